import type {
  DynamicModule,
  ForwardReference,
  InjectionToken,
  OptionalFactoryDependency,
  Provider,
  Type,
} from '@nestjs/common';
import type { IdempotencyModuleOptions } from '../interfaces/idempotency-options.interface';
import type { IdempotencyStore } from './idempotency-store';

/**
 * How a store that needs the application's providers is made: a factory with what it injects,
 * like a Nest factory provider, plus any providers the store brings along (a store's transaction
 * service, say). Stores ship one of these (`postgresStore()` from `nestjs-idempotency/postgres`).
 */
export interface IdempotencyStoreProvider {
  /**
   * Builds the store. It receives the module's options first (for the TTL and lease a store may
   * need to check its setup against), then one value per `inject` token.
   */
  useFactory: (
    options: IdempotencyModuleOptions,
    ...dependencies: never[]
  ) => IdempotencyStore | Promise<IdempotencyStore>;
  /** Tokens whose values follow the options in `useFactory`'s arguments. Default: none. */
  inject?: (InjectionToken | OptionalFactoryDependency)[];
  /** Modules whose exported providers `inject` needs. Default: none. */
  imports?: (Type | DynamicModule | Promise<DynamicModule> | ForwardReference)[];
  /** Providers the store brings into the idempotency module. Default: none. */
  providers?: Provider[];
  /** Those of `providers` that application code may inject. Default: none. */
  exports?: InjectionToken[];
}

/** What `store` accepts: a store, a store class Nest can construct, or a factory definition. */
export type IdempotencyStoreDefinition =
  IdempotencyStore | Type<IdempotencyStore> | IdempotencyStoreProvider;

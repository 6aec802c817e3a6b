import { type DynamicModule, Logger, Module, type Provider, type Type } from '@nestjs/common';
import { APP_INTERCEPTOR, DiscoveryModule, MetadataScanner, ModulesContainer } from '@nestjs/core';
import { type ResolvedModuleSettings, resolveModuleSettings } from './idempotency-options.defaults';
import { IdempotencyMaintenance } from './idempotency-maintenance.service';
import { IdempotencyPurger } from './idempotency-purger.service';
import { IdempotencyAdmin } from './admin/idempotency-admin.service';
import { IdempotencyInterceptor } from './idempotency.interceptor';
import { IdempotencyRoutesValidator } from './idempotency-routes.validator';
import {
  ConfigurableModuleClass,
  IDEMPOTENCY_GLOBAL_INTERCEPTOR,
  IDEMPOTENCY_MODULE_OPTIONS,
  IDEMPOTENCY_SETTINGS,
  IDEMPOTENCY_TELEMETRY,
  IDEMPOTENCY_TRANSACTIONAL_STORE,
  type IdempotencyModuleAsyncOptions,
  type IdempotencyModuleExtras,
  type IdempotencyModuleForRootOptions,
} from './idempotency.module-definition';
import type { IdempotencyModuleOptions } from './interfaces/idempotency-options.interface';
import { documentIdempotentRoutes } from './openapi/document-routes';
import { IdempotencyStore } from './store/idempotency-store';
import { TransactionalIdempotencyStore } from './store/transactional-idempotency-store';
import { createTelemetry } from './telemetry/create-telemetry';
import type {
  IdempotencyStoreDefinition,
  IdempotencyStoreProvider,
} from './store/idempotency-store.definition';
import { IdempotencySteps } from './steps/idempotency-steps';
import { IdempotencyStepsContext } from './steps/idempotency-steps.context';
import { IdempotencyTransactionContext } from './transaction/idempotency-transaction.context';

/** Documents the registration's routes for `@nestjs/swagger`; takes it back as the application closes. */
const IDEMPOTENCY_OPENAPI = Symbol('nestjs-idempotency:openapi');

/**
 * Makes HTTP routes safe to retry with an `Idempotency-Key` header, on the store the application
 * chooses. Import it once.
 *
 * @example
 * ```ts
 * @Module({
 *   imports: [
 *     TypeOrmModule.forRoot({ ... }),
 *     IdempotencyModule.forRoot({ store: postgresStore(), ttlMs: 86_400_000 }),
 *   ],
 * })
 * export class AppModule {}
 * ```
 */
@Module({
  imports: [DiscoveryModule],
  providers: [
    {
      provide: IDEMPOTENCY_SETTINGS,
      useFactory: (options: IdempotencyModuleOptions) => resolveModuleSettings(options),
      inject: [IDEMPOTENCY_MODULE_OPTIONS],
    },
    IdempotencyAdmin,
    {
      // Async: @opentelemetry/api is imported only here, and only when installed.
      provide: IDEMPOTENCY_TELEMETRY,
      useFactory: (settings: ResolvedModuleSettings) =>
        createTelemetry(settings, new Logger('Idempotency')),
      inject: [IDEMPOTENCY_SETTINGS],
    },
    IdempotencyInterceptor,
    IdempotencyRoutesValidator,
    IdempotencyMaintenance,
    IdempotencyPurger,
    IdempotencyTransactionContext,
    IdempotencyStepsContext,
    IdempotencySteps,
  ],
  exports: [
    IDEMPOTENCY_SETTINGS,
    IDEMPOTENCY_TELEMETRY,
    IDEMPOTENCY_TRANSACTIONAL_STORE,
    IdempotencyAdmin,
    IdempotencyInterceptor,
    IdempotencyMaintenance,
    IdempotencyPurger,
    IdempotencyStore,
    IdempotencyTransactionContext,
    IdempotencyStepsContext,
    IdempotencySteps,
  ],
})
export class IdempotencyModule extends ConfigurableModuleClass {
  /** Configures the module with options known up front. */
  static override forRoot(options: IdempotencyModuleForRootOptions = {}): DynamicModule {
    return withExtras(super.forRoot(options), options);
  }

  /** Configures the module with options from a factory (for example from `ConfigService`). */
  static override forRootAsync(options: IdempotencyModuleAsyncOptions): DynamicModule {
    return withExtras(super.forRootAsync(options), options);
  }
}

function withExtras(definition: DynamicModule, extras: IdempotencyModuleExtras): DynamicModule {
  if (extras.store === undefined) {
    throw new Error(
      "nestjs-idempotency: no store. Pass one to IdempotencyModule.forRoot({ store }): postgresStore() from 'nestjs-idempotency/postgres', or new InMemoryIdempotencyStore() from 'nestjs-idempotency/testing' in tests.",
    );
  }
  const stores = [storeParts(extras.store, IdempotencyStore)];
  // The same definition twice is one store, prepared and purged once.
  if (extras.transactionalStore === undefined || extras.transactionalStore === extras.store) {
    stores.push({
      provider: {
        provide: IDEMPOTENCY_TRANSACTIONAL_STORE,
        useFactory: (store: IdempotencyStore) =>
          store instanceof TransactionalIdempotencyStore ? store : null,
        inject: [IdempotencyStore],
      },
      providers: [],
      imports: [],
      exports: [],
    });
  } else {
    stores.push(storeParts(extras.transactionalStore, IDEMPOTENCY_TRANSACTIONAL_STORE));
  }
  const providers = [
    ...(definition.providers ?? []),
    ...stores.flatMap((store) => [store.provider, ...store.providers]),
  ];
  if (extras.useGlobalInterceptor) {
    providers.push(
      { provide: APP_INTERCEPTOR, useExisting: IdempotencyInterceptor },
      { provide: IDEMPOTENCY_GLOBAL_INTERCEPTOR, useValue: true },
    );
  }
  // Built as the application is created, before SwaggerModule.createDocument() reads the routes.
  providers.push({
    provide: IDEMPOTENCY_OPENAPI,
    useFactory: (
      settings: ResolvedModuleSettings,
      modules: ModulesContainer,
      scanner: MetadataScanner,
    ) => documentIdempotentRoutes(settings, modules, scanner, new Logger('Idempotency')),
    inject: [IDEMPOTENCY_SETTINGS, ModulesContainer, MetadataScanner],
  });
  return {
    ...definition,
    global: extras.isGlobal ?? true,
    imports: [...(definition.imports ?? []), ...stores.flatMap((store) => store.imports)],
    providers,
    exports: [...(definition.exports ?? []), ...stores.flatMap((store) => store.exports)],
  };
}

/** The providers, imports and exports that `store` adds to the module, as `token`. */
function storeParts(
  store: IdempotencyStoreDefinition,
  token: typeof IdempotencyStore | typeof IDEMPOTENCY_TRANSACTIONAL_STORE,
): {
  provider: Provider;
  providers: Provider[];
  imports: NonNullable<IdempotencyStoreProvider['imports']>;
  exports: NonNullable<IdempotencyStoreProvider['exports']>;
} {
  const none = { providers: [], imports: [], exports: [] };
  if (typeof store === 'function') {
    return { ...none, provider: { provide: token, useClass: store as Type } };
  }
  if (!('useFactory' in store)) {
    return { ...none, provider: { provide: token, useValue: store } };
  }
  return {
    provider: {
      provide: token,
      useFactory: store.useFactory as (...args: unknown[]) => IdempotencyStore,
      inject: [IDEMPOTENCY_MODULE_OPTIONS, ...(store.inject ?? [])],
    },
    providers: store.providers ?? [],
    imports: store.imports ?? [],
    exports: store.exports ?? [],
  };
}

import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { IdempotencyModuleOptions } from './interfaces/idempotency-options.interface';
import type { IdempotencyStoreDefinition } from './store/idempotency-store.definition';

/**
 * Options that decide which providers the module declares, so they are read outside `useFactory`
 * (tokens must be known before any factory runs).
 */
export interface IdempotencyModuleExtras {
  /**
   * Make the module's providers visible to every module, so `@Idempotent()` works in any
   * controller. Default: `true`.
   */
  isGlobal?: boolean;
  /**
   * Where keys are kept: a store, a store class, or a store's factory definition
   * (`postgresStore()` from `nestjs-idempotency/postgres`, `new InMemoryIdempotencyStore()` from
   * `nestjs-idempotency/testing` in tests). Required.
   */
  store?: IdempotencyStoreDefinition;
  /**
   * Where transactional routes keep their keys, when `store` cannot join their transaction: a
   * store that runs transactions (`postgresStore()`), given the way `store` is. With it, lease
   * routes use `store` (a Redis store, say) and transactional routes this one, whose record
   * commits with their writes. Default: `store`.
   */
  transactionalStore?: IdempotencyStoreDefinition;
  /**
   * Register the interceptor for every route (`APP_INTERCEPTOR`). Needed for `autoMethods`;
   * decorated routes work either way. Default: `false`.
   */
  useGlobalInterceptor?: boolean;
}

export const {
  ConfigurableModuleClass,
  MODULE_OPTIONS_TOKEN: IDEMPOTENCY_MODULE_OPTIONS,
  OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<IdempotencyModuleOptions>({ moduleName: 'Idempotency' })
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createIdempotencyOptions')
  // Applied by IdempotencyModule's own forRoot/forRootAsync, which read the extras directly.
  .setExtras<IdempotencyModuleExtras>({
    isGlobal: true,
    store: undefined,
    transactionalStore: undefined,
    useGlobalInterceptor: false,
  })
  .build();

/** What `IdempotencyModule.forRoot()` takes: the options with the provider-shaping extras. */
export type IdempotencyModuleForRootOptions = typeof OPTIONS_TYPE;

/** What `IdempotencyModule.forRootAsync()` takes: a factory, class or existing provider of the options, with the extras beside it. */
export type IdempotencyModuleAsyncOptions = typeof ASYNC_OPTIONS_TYPE;

/**
 * Token of the store of transactional routes: `transactionalStore`, else `store` when it runs
 * transactions, else null.
 */
export const IDEMPOTENCY_TRANSACTIONAL_STORE = Symbol('IDEMPOTENCY_TRANSACTIONAL_STORE');

/**
 * Token of the module's metrics and spans (`IdempotencyTelemetry`): null when `telemetry` is off or
 * `@opentelemetry/api` is not installed.
 */
export const IDEMPOTENCY_TELEMETRY = Symbol('IDEMPOTENCY_TELEMETRY');

/** Token of the resolved module settings (defaults applied once). */
export const IDEMPOTENCY_SETTINGS = Symbol('IDEMPOTENCY_SETTINGS');

/**
 * Provided (as `true`) by a registration with `useGlobalInterceptor`: its interceptor runs before
 * any controller's, so it handles every idempotent route of the application.
 */
export const IDEMPOTENCY_GLOBAL_INTERCEPTOR = Symbol('IDEMPOTENCY_GLOBAL_INTERCEPTOR');

import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { IdempotencyModuleOptions } from './interfaces/idempotency-options.interface';

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
  /** Name of the TypeORM DataSource whose pool the store uses. Default: the default DataSource. */
  dataSourceName?: string;
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
    dataSourceName: undefined,
    useGlobalInterceptor: false,
  })
  .build();

/** Token of the resolved module settings (defaults applied once). */
export const IDEMPOTENCY_SETTINGS = Symbol('IDEMPOTENCY_SETTINGS');

/** Token of the TypeORM DataSource the module uses (`null` with a custom store and no TypeORM). */
export const IDEMPOTENCY_DATA_SOURCE = Symbol('IDEMPOTENCY_DATA_SOURCE');

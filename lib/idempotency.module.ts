import { type DynamicModule, Module, type Provider } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { resolveModuleSettings, resolvePartitioning } from './idempotency-options.defaults';
import { IdempotencyPurger } from './idempotency-purger.service';
import { IdempotencyInterceptor } from './idempotency.interceptor';
import {
  ASYNC_OPTIONS_TYPE,
  ConfigurableModuleClass,
  IDEMPOTENCY_DATA_SOURCE,
  IDEMPOTENCY_MODULE_OPTIONS,
  IDEMPOTENCY_SETTINGS,
  type IdempotencyModuleExtras,
  OPTIONS_TYPE,
} from './idempotency.module-definition';
import type { IdempotencyModuleOptions } from './interfaces/idempotency-options.interface';
import { IdempotencyStore } from './store/idempotency-store';
import { PostgresIdempotencyStore } from './postgres/store/postgres-idempotency.store';
import { IdempotencyTransaction } from './postgres/transaction/idempotency-transaction.service';
import { OutsideTransactionWarner } from './postgres/transaction/outside-transaction-warner';

/**
 * Makes HTTP routes safe to retry with an `Idempotency-Key` header, backed by PostgreSQL through the
 * application's TypeORM DataSource. Import it once, next to `TypeOrmModule.forRoot()`.
 *
 * @example
 * ```ts
 * @Module({
 *   imports: [TypeOrmModule.forRoot({ ... }), IdempotencyModule.forRoot({ ttlMs: 86_400_000 })],
 * })
 * export class AppModule {}
 * ```
 */
@Module({
  providers: [
    {
      provide: IDEMPOTENCY_SETTINGS,
      useFactory: (options: IdempotencyModuleOptions) => resolveModuleSettings(options),
      inject: [IDEMPOTENCY_MODULE_OPTIONS],
    },
    IdempotencyInterceptor,
    IdempotencyPurger,
    IdempotencyTransaction,
    OutsideTransactionWarner,
  ],
  exports: [IDEMPOTENCY_SETTINGS, IdempotencyInterceptor, IdempotencyStore, IdempotencyTransaction],
})
export class IdempotencyModule extends ConfigurableModuleClass {
  /** Configures the module with options known up front. */
  static override forRoot(options: typeof OPTIONS_TYPE = {}): DynamicModule {
    return withExtras(super.forRoot(options), options);
  }

  /** Configures the module with options from a factory (for example from `ConfigService`). */
  static override forRootAsync(options: typeof ASYNC_OPTIONS_TYPE): DynamicModule {
    return withExtras(super.forRootAsync(options), options);
  }
}

function withExtras(definition: DynamicModule, extras: IdempotencyModuleExtras): DynamicModule {
  const dataSourceProvider: Provider = {
    provide: IDEMPOTENCY_DATA_SOURCE,
    useFactory: (dataSource: DataSource | undefined) => dataSource ?? null,
    inject: [{ token: getDataSourceToken(extras.dataSourceName), optional: true }],
  };
  const storeProvider: Provider = {
    provide: IdempotencyStore,
    useFactory: (options: IdempotencyModuleOptions, dataSource: DataSource | null) => {
      if (options.store) {
        return options.store;
      }
      if (!dataSource) {
        throw new Error(
          `nestjs-idempotency: no TypeORM DataSource${extras.dataSourceName ? ` named "${extras.dataSourceName}"` : ''} found. Import TypeOrmModule.forRoot() or pass a store.`,
        );
      }
      return new PostgresIdempotencyStore(
        dataSource,
        options.tableName,
        resolvePartitioning(options),
      );
    },
    inject: [IDEMPOTENCY_MODULE_OPTIONS, IDEMPOTENCY_DATA_SOURCE],
  };
  const providers = [...(definition.providers ?? []), dataSourceProvider, storeProvider];
  if (extras.useGlobalInterceptor) {
    providers.push({ provide: APP_INTERCEPTOR, useExisting: IdempotencyInterceptor });
  }
  return { ...definition, global: extras.isGlobal ?? true, providers };
}

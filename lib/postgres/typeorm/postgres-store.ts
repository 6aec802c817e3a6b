import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import type { IdempotencyModuleOptions } from '../../interfaces/idempotency-options.interface';
import type { IdempotencyStoreProvider } from '../../store/idempotency-store.definition';
import { IdempotencyTransactionContext } from '../../transaction/idempotency-transaction.context';
import { type PostgresStoreOptions, resolvePartitioning } from '../postgres-store.options';
import { PostgresIdempotencyStore } from './postgres-idempotency.store';
import { IdempotencyTransaction } from './idempotency-transaction.service';
import { warnOnQueriesOutsideTransaction } from './outside-transaction-warner';

/**
 * The PostgreSQL store on the application's TypeORM DataSource (its pg pool), for
 * `IdempotencyModule.forRoot({ store: postgresStore() })`. It brings `IdempotencyTransaction`, the
 * injectable that gives transactional handlers their `EntityManager`. The DataSource is borrowed,
 * never created or destroyed.
 *
 * @example
 * ```ts
 * IdempotencyModule.forRoot({
 *   store: postgresStore({ tableName: 'billing.idempotency_records' }),
 *   ttlMs: 86_400_000,
 * });
 * ```
 */
export function postgresStore(options: PostgresStoreOptions = {}): IdempotencyStoreProvider {
  const { dataSourceName } = options;
  // A token per call: a module with two PostgreSQL stores (store and transactionalStore) keeps
  // both sets of options.
  const optionsToken = Symbol('nestjs-idempotency:postgres-store-options');
  return {
    useFactory: (
      module: IdempotencyModuleOptions,
      dataSource: DataSource | undefined,
      context: IdempotencyTransactionContext,
      { tableName, partitioning, warnOnQueriesOutsideTransaction: warn }: PostgresStoreOptions,
    ) => {
      if (!dataSource) {
        throw new Error(
          `nestjs-idempotency: no TypeORM DataSource${dataSourceName ? ` named "${dataSourceName}"` : ''} found for postgresStore(). Import TypeOrmModule.forRoot() in the application.`,
        );
      }
      if (warn ?? process.env.NODE_ENV !== 'production') {
        warnOnQueriesOutsideTransaction(dataSource, context);
      }
      return new PostgresIdempotencyStore(
        dataSource,
        tableName,
        resolvePartitioning(partitioning, module),
      );
    },
    inject: [
      { token: getDataSourceToken(dataSourceName), optional: true },
      IdempotencyTransactionContext,
      optionsToken,
    ],
    // The options travel as a provider's value, not only in the factory's closure: Nest tells two
    // registrations apart by their providers, and a function's closure does not show in them.
    providers: [{ provide: optionsToken, useValue: { ...options } }, IdempotencyTransaction],
    exports: [IdempotencyTransaction],
  };
}

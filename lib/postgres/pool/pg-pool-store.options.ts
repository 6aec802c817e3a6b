import type { DynamicModule, ForwardReference, InjectionToken, Type } from '@nestjs/common';
import type { Pool, PoolConfig } from 'pg';
import type { PostgresAppTransactions } from '../app-transaction/app-transactions';
import type { IdempotencyPartitioningOptions } from '../postgres-store.options';

/**
 * Options of `pgPoolStore()`: where its pool comes from (exactly one of `pool`, `connection` and
 * `poolToken`), and the table.
 */
export interface PgPoolStoreOptions {
  /** The application's pg `Pool`. Borrowed: the module never ends it. */
  pool?: Pool;
  /**
   * A connection string or pg `PoolConfig`: the module creates a pool of its own from it, and ends
   * it when the application shuts down.
   */
  connection?: string | PoolConfig;
  /**
   * The injection token of a provider of the application's pg `Pool` (borrowed, as `pool`). Its
   * module must be global, or listed in `imports`.
   */
  poolToken?: InjectionToken;
  /** Modules that provide `poolToken`. */
  imports?: (Type | DynamicModule | Promise<DynamicModule> | ForwardReference)[];
  /**
   * The table, optionally schema-qualified. Validated as an identifier, since it is part of the
   * SQL. Create it with `createIdempotencyTableSql(tableName)` or the package's
   * `sql/idempotency-records.sql`. Default: `'idempotency_records'`.
   */
  tableName?: string;
  /** Set when the table is partitioned by expiry; as `postgresStore()`'s `partitioning`. */
  partitioning?: IdempotencyPartitioningOptions;
  /**
   * Runs `transactional: true` routes inside the application's `@nestjs-cls/transactional`
   * transactions: `token` is its `TransactionHost` (the class, or `getTransactionHostToken(name)`
   * for a named connection), and `query` sends one statement on the host's `tx` for the adapter
   * in use: `entityManagerQuery`, `drizzleQuery(sql)`, `prismaQuery`, `kyselyQuery(CompiledQuery)`
   * or `knexQuery`, from this entry point. Not with `partitioning`. Unset: lease routes only.
   */
  transactionHost?: {
    token: InjectionToken;
    query: PostgresAppTransactions['query'];
    /**
     * The node-postgres client under the host's `tx`, where the data layer shows it:
     * `entityManagerClient` (TypeORM) or `drizzleClient` (Drizzle on node-postgres), from this
     * entry point. With it, the store sends the claim, its statement timeout and
     * its savepoint in one round trip on that client, and the response's write without the ORM;
     * return `undefined` (or leave it unset) to send every statement through `query`. Default:
     * unset.
     */
    client?: PostgresAppTransactions['client'];
  };
  /**
   * With `transactionHost`: log a warning when a transactional request's handler takes a
   * connection of the application's pool (`pool` or `poolToken`) while its transaction is open
   * (a query on the pool or the ORM itself, not `txHost.tx`), once per route. Such writes commit
   * on their own. Default: `true` unless `NODE_ENV` is `'production'`.
   */
  warnOnQueriesOutsideTransaction?: boolean;
}

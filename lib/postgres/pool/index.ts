export { pgPoolStore } from './pg-pool-store';
export type { PgPoolStoreOptions } from './pg-pool-store.options';
export type { IdempotencyPartitioningOptions } from '../postgres-store.options';
export { PgPoolIdempotencyStore } from '../store/pg-pool-idempotency.store';
export { AppTransactionIdempotencyStore } from '../app-transaction/app-transaction.store';
export {
  type AppTransactionRow,
  type ClsTransactionHost,
  type PostgresAppTransactions,
  clsTransactionHost,
} from '../app-transaction/app-transactions';
export {
  CREATE_IDEMPOTENCY_TABLE_SQL,
  addRecoveryPointsColumnSql,
  createIdempotencyTableSql,
  createPartitionedIdempotencyTableSql,
} from '../schema/idempotency-table.sql';
export { createInFlightIndexSql } from '../schema/in-flight-index.sql';
export {
  type PartitionedMigrationSql,
  partitionedMigrationSql,
} from '../schema/partitioned-migration.sql';
export type {
  ClsAdapterSettings,
  ClsIsolationLevel,
  ClsTransactionalAdapter,
  ClsTransactionalAdapterOptions,
} from '../orm/cls-transactional-adapter';
export {
  type KyselyClsTransactionOptions,
  type KyselyCompiledQueryFactory,
  type KyselyConnection,
  type KyselyTransactionalAdapter,
  kyselyQuery,
  kyselyTransactionalAdapter,
} from '../orm/kysely';
export {
  type KnexClsTransactionOptions,
  type KnexConnection,
  type KnexTransactionalAdapter,
  knexQuery,
  knexTransactionalAdapter,
} from '../orm/knex';
export { type DrizzleSqlTag, drizzleClient, drizzleQuery } from '../orm/drizzle';
export { entityManagerClient, entityManagerQuery } from '../orm/entity-manager';
export { prismaQuery } from '../orm/prisma';

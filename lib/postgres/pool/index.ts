export { pgPoolStore } from './pg-pool-store';
export type { PgPoolStoreOptions } from './pg-pool-store.options';
export type { IdempotencyPartitioningOptions } from '../postgres-store.options';
export { PgPoolIdempotencyStore } from '../store/pg-pool-idempotency.store';
export {
  CREATE_IDEMPOTENCY_TABLE_SQL,
  createIdempotencyTableSql,
  createPartitionedIdempotencyTableSql,
} from '../schema/idempotency-table.sql';
export { createInFlightIndexSql } from '../schema/in-flight-index.sql';
export {
  type PartitionedMigrationSql,
  partitionedMigrationSql,
} from '../schema/partitioned-migration.sql';

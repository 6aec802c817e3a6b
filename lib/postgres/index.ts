export { postgresStore } from './postgres-store';
export type {
  IdempotencyPartitioningOptions,
  PostgresStoreOptions,
} from './postgres-store.options';
export { PostgresIdempotencyStore } from './store/postgres-idempotency.store';
export { StatementUnansweredError } from './store/statement-deadline';
export { IdempotencyTransaction } from './transaction/idempotency-transaction.service';
export { IdempotentEntityManager } from './transaction/idempotent-entity-manager.decorator';
export { IdempotencyRecord } from './schema/idempotency-record.entity';
export {
  CREATE_IDEMPOTENCY_TABLE_SQL,
  CreateIdempotencyRecords1764201600000,
  createIdempotencyTableSql,
  createPartitionedIdempotencyTableSql,
} from './schema/create-idempotency-records.migration';
export { createInFlightIndexSql } from './schema/in-flight-index.sql';
export {
  type PartitionedMigrationSql,
  partitionedMigrationSql,
} from './schema/partitioned-migration.sql';

export { postgresStore } from './typeorm/postgres-store';
export type {
  IdempotencyPartitioningOptions,
  PostgresStoreOptions,
} from './postgres-store.options';
export { PostgresIdempotencyStore } from './typeorm/postgres-idempotency.store';
export { PgPoolIdempotencyStore } from './store/pg-pool-idempotency.store';
export { StatementUnansweredError } from './typeorm/statement-deadline';
export { IdempotencyTransaction } from './typeorm/idempotency-transaction.service';
export { IdempotentEntityManager } from './typeorm/idempotent-entity-manager.decorator';
export { IdempotencyRecord } from './typeorm/idempotency-record.entity';
export { CreateIdempotencyRecords1764201600000 } from './typeorm/create-idempotency-records.migration';
export { AddIdempotencyRecoveryPoints1796601600000 } from './typeorm/add-idempotency-recovery-points.migration';
export {
  CREATE_IDEMPOTENCY_TABLE_SQL,
  addRecoveryPointsColumnSql,
  createIdempotencyTableSql,
  createPartitionedIdempotencyTableSql,
} from './schema/idempotency-table.sql';
export { createInFlightIndexSql } from './schema/in-flight-index.sql';
export {
  type PartitionedMigrationSql,
  partitionedMigrationSql,
} from './schema/partitioned-migration.sql';

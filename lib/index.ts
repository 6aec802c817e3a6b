export { IdempotencyModule } from './idempotency.module';
export type { IdempotencyModuleExtras } from './idempotency.module-definition';
export { Idempotent, SkipIdempotency } from './idempotent.decorator';
export { IdempotencyInterceptor } from './idempotency.interceptor';
export {
  IdempotencyException,
  IdempotencyKeyInFlightException,
  IdempotencyKeyInvalidException,
  IdempotencyKeyMismatchException,
  IdempotencyKeyMissingException,
  IdempotencyRequestNotFingerprintableException,
  IdempotencyResponseNotReplayableException,
  IdempotencyScopeUnresolvedException,
  IdempotencyStoreUnavailableException,
  type ProblemDetails,
} from './idempotency.exceptions';
export { IdempotencyPurger } from './idempotency-purger.service';
export { IDEMPOTENCY_DEFAULTS } from './idempotency-options.defaults';
export { REPLAYED_HEADER, PROBLEM_CONTENT_TYPE } from './idempotency.constants';
export type {
  FingerprintOptions,
  IdempotencyModuleOptions,
  IdempotencyPartitioningOptions,
  IdempotencyRequestInfo,
  IdempotencyRouteOptions,
} from './interfaces/idempotency-options.interface';
export type {
  IdempotencyOutcome,
  IdempotencyOutcomeEvent,
} from './interfaces/idempotency-outcome.interface';
export { IdempotencyStore } from './store/idempotency-store';
export type { ClaimHandle, ClaimRequest, ClaimResult } from './store/claim-result.interface';
export type { StoredResponse } from './store/stored-response.interface';
export {
  TransactionalIdempotencyStore,
  type IdempotencyTransactionHandle,
  type TransactionalClaimResult,
  type TransactionalLookupResult,
} from './store/transactional-idempotency-store';
export { IdempotencyTransaction } from './postgres/transaction/idempotency-transaction.service';
export { IdempotentEntityManager } from './postgres/transaction/idempotent-entity-manager.decorator';
export { PostgresIdempotencyStore } from './postgres/store/postgres-idempotency.store';
export { IdempotencyRecord } from './postgres/schema/idempotency-record.entity';
export {
  CREATE_IDEMPOTENCY_TABLE_SQL,
  CreateIdempotencyRecords1764201600000,
  createIdempotencyTableSql,
  createPartitionedIdempotencyTableSql,
} from './postgres/schema/create-idempotency-records.migration';
export {
  type PartitionedMigrationSql,
  partitionedMigrationSql,
} from './postgres/sql/partitioned-migration.sql';

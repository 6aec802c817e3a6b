export { IdempotencyModule } from './idempotency.module';
export type {
  IdempotencyModuleAsyncOptions,
  IdempotencyModuleExtras,
  IdempotencyModuleForRootOptions,
} from './idempotency.module-definition';
export { Idempotent, SkipIdempotency } from './idempotent.decorator';
export { IdempotencyInterceptor } from './idempotency.interceptor';
export type { IdempotentMessageContext } from './messages/message-delivery';
export {
  IdempotencyException,
  IdempotencyKeyInFlightException,
  IdempotencyKeyInvalidException,
  IdempotencyKeyMismatchException,
  IdempotencyKeyMissingException,
  IdempotencyRequestNotFingerprintableException,
  IdempotencyResponseNotReplayableException,
  IdempotencyScopeUnresolvedException,
  IdempotencyStepResultNotStorableException,
  IdempotencyStepsMismatchException,
  IdempotencyStoreUnavailableException,
  type ProblemDetails,
} from './idempotency.exceptions';
export {
  type FindKeyOptions,
  IdempotencyAdmin,
  type ListInFlightOptions,
  MAX_IN_FLIGHT_LIST,
  type ReleaseKeyOptions,
} from './admin/idempotency-admin.service';
export { IdempotencyMaintenance } from './idempotency-maintenance.service';
export { IdempotencyPurger } from './idempotency-purger.service';
export {
  IDEMPOTENCY_DEFAULTS,
  type ResolvedModuleSettings,
  type ResolvedRouteSettings,
  type ResolvedStepsSettings,
} from './idempotency-options.defaults';
export { REPLAYED_HEADER, PROBLEM_CONTENT_TYPE } from './idempotency.constants';
export type {
  FingerprintOptions,
  IdempotencyModuleOptions,
  IdempotencyRequestInfo,
  IdempotencyRouteOptions,
  IdempotencyStepsOptions,
} from './interfaces/idempotency-options.interface';
export { IdempotencySteps } from './steps/idempotency-steps';
export { IdempotencyStepsContext } from './steps/idempotency-steps.context';
export type {
  IdempotencyOutcome,
  IdempotencyOutcomeEvent,
} from './interfaces/idempotency-outcome.interface';
export { IdempotencyStore } from './store/idempotency-store';
export type { ClaimHandle, ClaimRequest, ClaimResult } from './store/claim-result.interface';
export type { StoredResponse } from './store/stored-response.interface';
export {
  type IdempotencyRecoveryPoints,
  type IdempotencyStepTransaction,
  type IdempotencyStepTransactions,
  type RecordedStep,
  keepsRecoveryPoints,
  runsStepTransactions,
} from './store/recovery-points.interface';
export type {
  IdempotencyHealthQuery,
  IdempotencyStoreHealth,
} from './store/idempotency-store-health.interface';
export {
  type IdempotencyKeyAdmin,
  type IdempotencyKeyInfo,
  type InFlightQuery,
  KeyListingUnsupportedError,
  hasKeyAdmin,
} from './store/key-admin.interface';
export {
  HandlerTransactionAbortedError,
  TransactionalIdempotencyStore,
  type IdempotencyTransactionHandle,
  type TransactionLimits,
  type TransactionalClaimResult,
  type TransactionalLookupResult,
} from './store/transactional-idempotency-store';
export type {
  IdempotencyStoreDefinition,
  IdempotencyStoreProvider,
} from './store/idempotency-store.definition';
export {
  type ActiveIdempotencyTransaction,
  IdempotencyTransactionContext,
} from './transaction/idempotency-transaction.context';

export {
  InMemoryIdempotencyStore,
  type InMemoryIdempotencyStoreOptions,
} from './in-memory-idempotency.store';
export { describeIdempotencyStore } from './store-conformance';
export type {
  ConformanceTransactionWrites,
  IdempotencyStoreConformanceOptions,
  IdempotencyStoreFactory,
  PurgeMode,
} from './store-conformance.options';

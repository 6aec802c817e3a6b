import type { IdempotencyStore } from '../store/idempotency-store';
import type { IdempotencyTransactionHandle } from '../store/transactional-idempotency-store';

/**
 * Creates the store for one test of the conformance suite. It is called before every test and
 * must return a store holding no keys (the purge tests count what they delete); the suite then
 * calls its `prepare()`, as the module does at start-up. Each test also works in a scope of its
 * own, so only the purge cases depend on the store being empty. A factory may return one store
 * for every test, emptied each time (a database table truncated), or a new one.
 */
export type IdempotencyStoreFactory<S extends IdempotencyStore = IdempotencyStore> = () =>
  S | Promise<S>;

/**
 * How a store purges expired keys:
 * - `'batched'`: each `purgeExpired(batchSize)` deletes at most `batchSize` expired keys and
 *   returns exactly how many it deleted (the PostgreSQL single table, the in-memory store);
 * - `'bulk'`: a pass deletes expired keys in units of its own, whatever `batchSize`, possibly up to
 *   `purgeLagMs` after they expired, and returns an estimate (the partitioned table, which drops
 *   whole partitions);
 * - `'expiring'`: keys go by themselves, at most `purgeLagMs` after they expired, and
 *   `purgeExpired` deletes nothing and returns 0 (Redis, whose keys carry their own expiry).
 */
export type PurgeMode = 'batched' | 'bulk' | 'expiring';

/**
 * Writes that a transactional handler makes through its transaction, so the suite can check that
 * they commit and roll back with the key. Without it, only the key's own visibility is checked.
 */
export interface ConformanceTransactionWrites {
  /** Writes `marker` through `transaction.transaction`, as a handler would. */
  write(transaction: IdempotencyTransactionHandle, marker: string): Promise<void>;
  /** Whether `marker` is committed, read outside any transaction. */
  isCommitted(marker: string): Promise<boolean>;
}

/** Options of `describeIdempotencyStore`. Every field is optional. */
export interface IdempotencyStoreConformanceOptions<S extends IdempotencyStore = IdempotencyStore> {
  /**
   * Whether the store is a `TransactionalIdempotencyStore` (transactional mode); the suite then
   * also runs the transactional cases, and checks that the store is one exactly when declared so.
   * Default: `false`.
   */
  transactional?: boolean;
  /** Checks of the handler's writes in transactional mode. Default: none. */
  transactionWrites?: ConformanceTransactionWrites;
  /**
   * Whether the store offers key administration (`IdempotencyKeyAdmin`, for `IdempotencyAdmin`):
   * `'listing'` with `listInFlight`, `'by-key'` when that always rejects (a store that cannot list
   * a scope's keys). The suite then runs the key administration cases, and checks that the store
   * offers it exactly when declared so. Default: none.
   */
  keyAdmin?: 'listing' | 'by-key';
  /**
   * Whether the store keeps recovery points (`IdempotencyRecoveryPoints`, for `IdempotencySteps`).
   * The suite then calls its `enableRecoveryPoints()` before `prepare()`, as the module does when
   * it records steps, runs their cases, and checks that the store keeps them exactly when declared
   * so; a store that keeps them only once enabled may be declared without, to check it as a module
   * without `steps` options uses it. Default: `false`.
   */
  recoveryPoints?: boolean;
  /**
   * Moves the store's clock forward by this many milliseconds, for a store that takes a clock:
   * lease and TTL tests then advance time instead of waiting for it. Default: none (the tests
   * wait in real time, which works for any store, including one whose clock is a database's).
   */
  advanceTime?: (ms: number) => void | Promise<void>;
  /**
   * Lease and TTL that must run out during a test, in milliseconds. Default: 300.
   */
  shortMs?: number;
  /**
   * Lease and TTL that must not run out during a test, in milliseconds. A store with storage
   * prepared for a horizon (partitions) must reach twice this far. Default: 60 000.
   */
  longMs?: number;
  /**
   * How long past a lease or TTL a waiting test waits before relying on its end, in
   * milliseconds: clock granularity and skew between the test and the store's clock. Default:
   * 50 (1 with `advanceTime`).
   */
  marginMs?: number;
  /**
   * How soon a store call on a key that another claim holds must answer, in milliseconds: the
   * module bounds each call by `storeTimeoutMs` (default 2 000), so a store that waits for the
   * holder turns duplicates into 503s. Default: 1 000.
   */
  promptMs?: number;
  /** How the store purges. Default: `'batched'`. */
  purge?: PurgeMode;
  /**
   * With `purge: 'bulk'`: how long after its expiry a key may outlive a purge; with `'expiring'`:
   * how long it may outlive its expiry. In milliseconds. Default: 0.
   */
  purgeLagMs?: number;
  /**
   * How many keys `store` holds, expired ones not yet purged included: lets the purge tests check
   * what was deleted, not only what was reported. Default: none.
   */
  countRecords?: (store: S) => Promise<number>;
  /** Called after every test with its store (close connections, stop timers). Default: none. */
  teardown?: (store: S) => void | Promise<void>;
  /** Timeout of each test, in milliseconds. Default: 30 000. */
  testTimeoutMs?: number;
}

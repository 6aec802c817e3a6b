import type { IdempotencyStore } from '../store/idempotency-store';
import { claimCases } from './conformance/claim.cases';
import { conformanceContext, conformanceSettings } from './conformance/conformance-context';
import { expiryCases } from './conformance/expiry.cases';
import { keyAdminCases, keyAdminDeclarationCase } from './conformance/key-admin.cases';
import { leaseCases } from './conformance/lease.cases';
import {
  recoveryPointsCases,
  recoveryPointsDeclarationCase,
} from './conformance/recovery-points.cases';
import {
  transactionalCases,
  transactionalDeclarationCase,
} from './conformance/transactional.cases';
import { jestGlobals } from './jest-globals';
import type {
  IdempotencyStoreConformanceOptions,
  IdempotencyStoreFactory,
} from './store-conformance.options';

/**
 * Declares the conformance suite of `IdempotencyStore` for one store, as a Jest `describe` block:
 * what the module relies on a store to do, checked through the store's public methods only.
 * A store is done when the suite is green.
 *
 * It covers: one winner among parallel claims of a key; replay of the stored status, headers and
 * bytes; mismatch on another fingerprint (`null` matching any); in-flight with the lease left;
 * takeover of an ended lease by the same request only; fencing of every write by the claim's
 * token; not-replayable keys; release (never of a completed key); TTL counted from completion,
 * expired keys new again whether purged or not; the purge; scopes kept apart; what the module's
 * store timeouts need; and, for a `TransactionalIdempotencyStore`, commit and rollback
 * visibility, `busy` for a key another transaction holds, and `discardWritesAndComplete`; and,
 * with `keyAdmin`, key administration (find, release, delete, list) kept within its scope; and,
 * with `recoveryPoints`, the steps a claim finished handed to the claim that takes its key over.
 *
 * Lease and TTL cases wait in real time for `shortMs` (300 ms by default) unless `advanceTime`
 * moves the store's clock; the whole suite takes a few seconds.
 *
 * Call it at the top level of a Jest test file (or inside a `describe`); it uses Jest's global
 * `describe`, `it`, `beforeEach`, `afterEach` and `expect`, and throws when they are missing or
 * the options contradict each other.
 *
 * @param name the name of the `describe` block, usually the store's.
 * @param factory creates the store of one test: called before each test, it must return a store
 *   holding no keys (see `IdempotencyStoreFactory`).
 * @param options capabilities of the store and timing of the suite.
 *
 * @example
 * ```ts
 * // redis-idempotency.store.spec.ts
 * import { describeIdempotencyStore } from 'nestjs-idempotency/testing';
 *
 * describeIdempotencyStore('RedisIdempotencyStore', async () => {
 *   await redis.flushdb();
 *   return new RedisIdempotencyStore(redis);
 * });
 * ```
 */
export function describeIdempotencyStore<S extends IdempotencyStore>(
  name: string,
  factory: IdempotencyStoreFactory<S>,
  options: IdempotencyStoreConformanceOptions<S> = {},
): void {
  const jest = jestGlobals();
  const settings = conformanceSettings(options);
  jest.describe(name, () => {
    const context = conformanceContext(jest, factory, options, settings);
    transactionalDeclarationCase(context);
    keyAdminDeclarationCase(context);
    recoveryPointsDeclarationCase(context);
    claimCases(context);
    leaseCases(context);
    expiryCases(context);
    if (options.transactional) {
      transactionalCases(context);
    }
    if (options.keyAdmin) {
      keyAdminCases(context);
    }
    if (options.recoveryPoints) {
      recoveryPointsCases(context);
    }
  });
}

import type { ClaimHandle, ClaimRequest, ClaimResult } from './claim-result.interface';
import type {
  IdempotencyHealthQuery,
  IdempotencyStoreHealth,
} from './idempotency-store-health.interface';
import type { StoredResponse } from './stored-response.interface';

/**
 * The storage port. The interceptor talks to nothing else, so another backend (Redis, DynamoDB)
 * is one class away. It is also the DI token of the store in use.
 *
 * Every method must be safe to call concurrently from many processes: `claim` decides a key's
 * owner atomically, and `complete`, `markNotReplayable` and `release` change a key only while
 * `handle.token` is still its current claim (a claim whose lease was taken over is fenced off).
 */
export abstract class IdempotencyStore {
  /** Claims a key, or reports why it cannot be claimed. Must not throw for a busy key. */
  abstract claim(request: ClaimRequest): Promise<ClaimResult>;

  /**
   * Stores the response of a claimed key for replay. Returns `false` when the claim was no longer
   * current (its lease was taken over), in which case nothing was written.
   */
  abstract complete(handle: ClaimHandle, response: StoredResponse, ttlMs: number): Promise<boolean>;

  /**
   * Marks a claimed key as executed but not replayable, with the status its execution produced
   * (`null` while not known yet); `false` when the claim was not current.
   */
  abstract markNotReplayable(
    handle: ClaimHandle,
    status: number | null,
    ttlMs: number,
  ): Promise<boolean>;

  /** Frees a claimed key so a retry runs again; `false` when the claim was not current. */
  abstract release(handle: ClaimHandle): Promise<boolean>;

  /**
   * Deletes up to `batchSize` expired keys; returns how many were deleted. The module calls it
   * every `purgeIntervalMs`, unless that is 0. A store whose keys expire by themselves returns 0.
   */
  abstract purgeExpired(batchSize: number): Promise<number>;

  /**
   * Called once as the application starts, before it serves requests: a store checks or prepares
   * its storage here (the PostgreSQL store creates the partitions of a partitioned table). A
   * failure stops the start-up. Default: nothing.
   */
  prepare(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * Upkeep the storage needs while the application runs, apart from purging: the PostgreSQL store
   * creates a partitioned table's partitions ahead here. The module calls it every
   * `maintenanceIntervalMs()` after start-up; failures are logged and the next call tries again.
   * Default: nothing.
   */
  maintain(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * How often the module calls `maintain()`, in milliseconds; 0 for never. Read once at start-up.
   * Default: 0.
   */
  maintenanceIntervalMs(): number {
    return 0;
  }

  /**
   * Reports whether the store answers, with what it can measure cheaply about its keys (see
   * `IdempotencyStoreHealth`), for the health indicator of `nestjs-idempotency/health`. It must
   * reject when the backend cannot be reached, and never run work that grows with the number of
   * keys unbounded: health checks are polled every few seconds. Default: resolves without
   * checking anything, saying so in `note`; stores with a backend override it.
   */
  health(_query: IdempotencyHealthQuery): Promise<IdempotencyStoreHealth> {
    return Promise.resolve({
      kind: this.constructor.name,
      note: 'This store does not check its backend.',
    });
  }
}

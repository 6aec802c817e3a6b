import type { ClaimHandle, ClaimRequest, ClaimResult } from './claim-result.interface';
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

  /** Deletes up to `batchSize` expired keys; returns how many were deleted. */
  abstract purgeExpired(batchSize: number): Promise<number>;

  /**
   * Called once as the application starts, before it serves requests: a store checks or prepares
   * its storage here (the PostgreSQL store creates the partitions of a partitioned table). A
   * failure stops the start-up. Default: nothing.
   */
  prepare(): Promise<void> {
    return Promise.resolve();
  }
}

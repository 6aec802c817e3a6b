import type { ClaimResult } from '../store/claim-result.interface';
import type { StoredResponse } from '../store/stored-response.interface';

/** State of a key that a store found live (not expired) and could not claim. */
export interface ExistingKey {
  state: 'in_flight' | 'completed' | 'not_replayable';
  fingerprint: string | null;
  /** Milliseconds left on the lease of an in-flight key (0 or less: the lease has ended). */
  leaseLeftMs: number;
  /** The stored response, for a completed key. */
  response: StoredResponse | null;
  /** The status the handler produced, for a not-replayable key. */
  status: number | null;
}

/**
 * Decides what a request gets for a key that someone else holds or finished. `retry` means the key
 * changed under the claim attempt (its lease just ended, or it was just freed) and the claim should
 * be attempted again.
 *
 * A different fingerprint wins over every other state: the client reused a key for another
 * request, and telling it so is more useful than "busy".
 */
export function decideExistingKey(
  existing: ExistingKey,
  fingerprint: string | null,
): Exclude<ClaimResult, { kind: 'claimed' }> | { kind: 'retry' } {
  if (
    fingerprint !== null &&
    existing.fingerprint !== null &&
    existing.fingerprint !== fingerprint
  ) {
    return { kind: 'mismatch' };
  }
  switch (existing.state) {
    case 'completed':
      return existing.response
        ? { kind: 'replay', response: existing.response }
        : { kind: 'retry' };
    case 'not_replayable':
      return { kind: 'not-replayable', status: existing.status };
    case 'in_flight':
      return existing.leaseLeftMs > 0
        ? { kind: 'in-flight', retryAfterMs: existing.leaseLeftMs }
        : { kind: 'retry' };
  }
}

import { sha256 } from '../protocol/request-fingerprint';
import type { IdempotencyStore } from './idempotency-store';
import type { StoredResponse } from './stored-response.interface';

/** One live key as an operator sees it (`IdempotencyAdmin`). */
export interface IdempotencyKeyInfo {
  scope: string;
  key: string;
  state: 'in_flight' | 'completed' | 'not_replayable';
  /**
   * Names the current claim (the SHA-256, hex, of its fencing token): a retry that takes the key
   * over gets another. Give it to `release` to free this claim and no later one.
   */
  claimId: string;
  /**
   * When the current claim was made; `null` where the store does not keep it (Redis).
   */
  claimedAt: Date | null;
  /** When the key finished (completed or marked not replayable); `null` while in flight or unknown. */
  finishedAt: Date | null;
  /** When an in-flight key's lease ends (a retry may take it over then); `null` once finished. */
  leaseEndsAt: Date | null;
  /** When the key expires and becomes new again. */
  expiresAt: Date;
  /** The stored status (completed), or the status the handler produced (not replayable). */
  status: number | null;
  /**
   * SHA-256 (hex) of the request fingerprint the key was claimed with, `null` without one: enough
   * to tell two requests apart without showing what the fingerprint was made of.
   */
  fingerprintHash: string | null;
  /** The stored response of a completed key, only when asked for (`withResponse`). */
  response?: StoredResponse;
}

/** What `listInFlight` looks for. */
export interface InFlightQuery {
  /** Keys claimed at least this long ago, in milliseconds. */
  olderThanMs: number;
  /** At most this many, the oldest first. */
  limit: number;
}

/**
 * What a store offers operators, key by key, besides the request path: an optional capability of
 * an `IdempotencyStore`, used by `IdempotencyAdmin`. Every method works inside one scope and never
 * reads or changes another's keys. None is fenced by a claim token: they act for an operator, and
 * the claim they override is fenced off from the key by its token as after any takeover.
 */
export interface IdempotencyKeyAdmin {
  /** The live key, or `null` when it is absent or expired. */
  findKey(scope: string, key: string, withResponse: boolean): Promise<IdempotencyKeyInfo | null>;
  /**
   * Frees an in-flight key so that the next request runs; `false` when it was not in flight, or
   * when `claimId` is given and names another claim than the current one.
   */
  releaseKey(scope: string, key: string, claimId?: string): Promise<boolean>;
  /** Deletes the key in any state; `false` when there was none. */
  deleteKey(scope: string, key: string): Promise<boolean>;
  /**
   * Keys of `scope` in flight for at least `olderThanMs`, the oldest first. A store that cannot
   * list a scope's keys (Redis keeps neither key nor scope readable) rejects with
   * `KeyListingUnsupportedError`.
   */
  listInFlight(scope: string, query: InFlightQuery): Promise<IdempotencyKeyInfo[]>;
}

/** A store cannot list a scope's keys (see `IdempotencyKeyAdmin.listInFlight`). */
export class KeyListingUnsupportedError extends Error {
  constructor(reason: string) {
    super(`nestjs-idempotency: this store cannot list keys: ${reason}`);
    this.name = 'KeyListingUnsupportedError';
  }
}

/** The `claimId` of a claim's fencing token. */
export function claimIdOf(token: string): string {
  return sha256(token);
}

/** The `fingerprintHash` of a stored fingerprint. */
export function fingerprintHashOf(fingerprint: string | null): string | null {
  return fingerprint === null ? null : sha256(fingerprint);
}

/** Whether `store` offers `IdempotencyKeyAdmin`. */
export function hasKeyAdmin(
  store: IdempotencyStore,
): store is IdempotencyStore & IdempotencyKeyAdmin {
  const admin = store as Partial<IdempotencyKeyAdmin>;
  return (
    typeof admin.findKey === 'function' &&
    typeof admin.releaseKey === 'function' &&
    typeof admin.deleteKey === 'function' &&
    typeof admin.listInFlight === 'function'
  );
}

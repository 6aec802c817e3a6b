import type { RecordedStep } from './recovery-points.interface';
import type { StoredResponse } from './stored-response.interface';

/** What the interceptor asks the store to claim. */
export interface ClaimRequest {
  /** Principal the key belongs to (`''` for anonymous). */
  scope: string;
  /** The idempotency key, validated and unquoted. */
  key: string;
  /** Request fingerprint, or `null` when fingerprinting is off. */
  fingerprint: string | null;
  /** Lease of the claim, in milliseconds. */
  lockTimeoutMs: number;
  /** How long the finished key is kept, in milliseconds. */
  ttlMs: number;
}

/** Identifies one claim: completion and release are fenced by its token. */
export interface ClaimHandle {
  scope: string;
  key: string;
  /** Unique per claim; a newer claim of the same key has a different one. */
  token: string;
  /**
   * The store's own note of where the claim's record is filed, carried with the handle and never
   * read by the module; the store keeps it current when a write moves the record. (A PostgreSQL
   * table partitioned by expiry keeps the row's expiry here, which names its partition.)
   */
  location?: string;
}

/**
 * Outcome of a claim. The store decides it atomically; the interceptor maps it to a response in one
 * place.
 */
export type ClaimResult =
  /**
   * This request owns the key and must run the handler. `steps`: the steps an earlier claim of
   * the key finished, when this one took it over (stores that keep recovery points only).
   */
  | { kind: 'claimed'; handle: ClaimHandle; steps?: readonly RecordedStep[] }
  /** The key finished before with the same fingerprint: replay this response. */
  | { kind: 'replay'; response: StoredResponse }
  /** Another request holds the key; its lease ends in `retryAfterMs`. */
  | { kind: 'in-flight'; retryAfterMs: number }
  /** The key was used with a different request. */
  | { kind: 'mismatch' }
  /** The key ran, but its response could not be stored; it will not run again. */
  | { kind: 'not-replayable'; status: number | null };

/**
 * What happened to one request on an idempotent route, reported to `onOutcome`.
 *
 * - `claimed`: the key was new (or its earlier claim had expired) and the handler runs now.
 * - `completed`: the handler's response was stored for replay.
 * - `replayed`: a stored response was sent; the handler did not run.
 * - `conflict`: the key is being processed by another request (409).
 * - `mismatch`: the key was used before with a different request (422).
 * - `released`: the handler failed in a way that is not stored, so the key was freed for a retry.
 * - `not-replayable`: the handler ran, but its response cannot be stored; the key is spent.
 * - `lease-lost`: the handler finished after its lease had been taken over; nothing was stored.
 * - `store-error`: the store failed or timed out; the handler did not run (claim) or its
 *   response could not be recorded (completion).
 */
export type IdempotencyOutcome =
  | 'claimed'
  | 'completed'
  | 'replayed'
  | 'conflict'
  | 'mismatch'
  | 'released'
  | 'not-replayable'
  | 'lease-lost'
  | 'store-error';

/** The event passed to the `onOutcome` hook. */
export interface IdempotencyOutcomeEvent {
  /** What happened. */
  outcome: IdempotencyOutcome;
  /** The scope (principal) the key belongs to; `''` for anonymous clients. */
  scope: string;
  /** SHA-256 (hex) of the idempotency key, so that logs and metrics never hold the raw key. */
  keyHash: string;
  /** The raw key: only with `logRawKeys` (development). */
  key?: string;
  /** HTTP method of the request. */
  method: string;
  /** Request path as received. */
  path: string;
  /** Status code sent to the client, when one is known at the time of the event. */
  status?: number;
  /** The error behind a `store-error` or `released` outcome. */
  error?: unknown;
}

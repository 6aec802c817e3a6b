/**
 * What happened to one request on an idempotent route, reported to `onOutcome`.
 *
 * - `claimed`: the key was new (or its earlier claim had expired) and the handler runs now.
 * - `completed`: the handler ran and its response was stored for replay.
 * - `replayed`: a stored response was sent; the handler did not run.
 * - `conflict`: the key is being processed by another request (409).
 * - `mismatch`: the key was used before with a different request (422).
 * - `released`: the handler failed in a way that is not stored, so the key was freed for a retry.
 * - `not-started`: Nest's pipes refused the request before its handler started (a
 *   `ValidationPipe`, say); nothing was stored and the key stays free for the corrected request.
 * - `not-replayable`: the handler ran, but its response cannot be stored; the key is spent.
 * - `lease-lost`: the handler finished after its lease had been taken over; nothing was stored.
 * - `store-error`: the store failed or timed out; the handler did not run (claim) or its
 *   response could not be recorded (completion).
 * - `key-missing`: the route requires a key and the request had none (400).
 * - `key-invalid`: the key header was malformed (400).
 * - `not-fingerprintable`: the body could not be fingerprinted (400).
 * - `scope-unresolved`: the default scope could not tell whose request it was (500).
 */
export type IdempotencyOutcome =
  | 'claimed'
  | 'completed'
  | 'replayed'
  | 'conflict'
  | 'mismatch'
  | 'released'
  | 'not-started'
  | 'not-replayable'
  | 'lease-lost'
  | 'store-error'
  | 'key-missing'
  | 'key-invalid'
  | 'not-fingerprintable'
  | 'scope-unresolved';

/** The event passed to the `onOutcome` hook. */
export interface IdempotencyOutcomeEvent {
  /** What happened. */
  outcome: IdempotencyOutcome;
  /**
   * The method and the route's path template as the platform matched it (`POST /payments/:id`):
   * a bounded set of values, fit for a metric label, unlike `path`.
   */
  route: string;
  /** Name of the controller class. */
  controller: string;
  /** Name of the route method. */
  handler: string;
  /**
   * The scope (principal) the key belongs to; `''` for anonymous clients. Absent when the request
   * was refused before its scope was resolved (`key-missing`, `key-invalid`,
   * `not-fingerprintable`, `scope-unresolved`).
   */
  scope?: string;
  /**
   * SHA-256 (hex) of the idempotency key, so that logs and metrics never hold the raw key. Absent
   * when there was no valid key (`key-missing`, `key-invalid`).
   */
  keyHash?: string;
  /** The raw key: only with `logRawKeys` (development). */
  key?: string;
  /** HTTP method of the request. */
  method: string;
  /** Request path as received (high cardinality: not for metric labels). */
  path: string;
  /** Status code sent to the client, when one is known at the time of the event. */
  status?: number;
  /**
   * Whether the client was (or will be) sent a stored response rather than a fresh execution's:
   * `true` exactly for `replayed`. Business metrics counting orders or charges should skip these.
   */
  replayed: boolean;
  /**
   * Milliseconds from the request reaching the interceptor until its key was claimed or found
   * taken, including any wait for a duplicate to finish (`concurrency: 'wait'`). Set from the
   * claim's answer on.
   */
  claimDurationMs?: number;
  /**
   * Milliseconds the handler ran (from the start of its pipes to its last value or error). Set on
   * the outcomes that follow a run: `completed`, `released`, `not-replayable`,
   * `lease-lost`, and `store-error` after a run.
   */
  handlerDurationMs?: number;
  /** The error behind a `store-error`, `released` or `not-started` outcome. */
  error?: unknown;
}

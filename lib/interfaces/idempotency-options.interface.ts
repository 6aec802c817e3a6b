import type { IdempotencyOutcomeEvent } from './idempotency-outcome.interface';

/** The parts of a request that the scope resolver and fingerprint may look at. */
export interface IdempotencyRequestInfo {
  /** Upper-case HTTP method. */
  method: string;
  /** Request path as received, with its query string. */
  url: string;
  /** Parsed request body, as the handler sees it (`undefined` when there is none). */
  body: unknown;
  /** The platform's request object (Express `Request` or Fastify `FastifyRequest`). */
  raw: unknown;
}

/** How the request fingerprint is computed. A key reused with a different fingerprint gets 422. */
export interface FingerprintOptions {
  /**
   * Compare requests at all. When `false`, any request reusing a key replays its response.
   * Default: `true`.
   */
  enabled?: boolean;
  /**
   * Body fields left out of the fingerprint, as dot paths (`'meta.sentAt'`), for volatile values
   * a client may legitimately change between retries. Default: `[]`.
   */
  excludeFields?: string[];
  /**
   * Replaces the default fingerprint (SHA-256 of method, path and the body as canonical JSON,
   * so that key order does not matter). Return the same string for requests that are the same.
   * Default: none.
   */
  compute?: (request: IdempotencyRequestInfo) => string;
}

/** Options that a route may override through `@Idempotent(options)`. */
export interface IdempotencyRouteOptions {
  /**
   * Answer 400 when the key header is missing. When `false`, requests without a key run
   * normally, unprotected. Default: `true` for `@Idempotent()` routes, `false` for routes
   * covered by `autoMethods`.
   */
  required?: boolean;
  /** How long a finished key is kept and replayed, in milliseconds. Default: `86_400_000` (24 h). */
  ttlMs?: number;
  /**
   * Lease of an in-flight claim, in milliseconds: after it, a retry may take the key over
   * (the first process is presumed dead). Set it above the route's slowest execution.
   * Default: `60_000`.
   */
  lockTimeoutMs?: number;
  /** Request fingerprinting. Default: enabled, no excluded fields. */
  fingerprint?: FingerprintOptions;
  /**
   * Which response statuses are stored and replayed. Others release the key so that a retry
   * runs again. Default: 2xx, 3xx and 4xx except 409 and 429.
   */
  storeStatus?: (status: number) => boolean;
  /**
   * Response headers stored and replayed besides `Content-Type` and `Location`, case-insensitive.
   * Credentials and cookies (`Set-Cookie`, `Cookie`, `Authorization`, `WWW-Authenticate`,
   * `Proxy-Authenticate`, `Proxy-Authorization`), framing and hop-by-hop headers are never stored.
   * Default: `[]`.
   */
  replayHeaders?: string[];
  /**
   * Largest response body stored, in bytes. A larger one is sent to the first client, and the key
   * is marked as executed but not replayable. Default: `1_048_576` (1 MiB).
   */
  maxResponseBytes?: number;
  /**
   * Resolves the scope (principal) that keys belong to, so that two clients' keys never collide
   * and no client can read another's response. Default: `request.user.id`, else
   * `request.user.sub` (the JWT subject), as a string; `''` (the anonymous scope, shared by every
   * client without a `request.user`) when there is no user. A `request.user` with neither is
   * refused with 500 (`IdempotencyScopeUnresolvedException`) rather than stored in a shared scope.
   */
  scope?: (request: IdempotencyRequestInfo) => string;
  /**
   * Transactional mode: the claim, the handler's writes (made through `IdempotencyTransaction`
   * or `@IdempotentEntityManager()`) and the stored response commit together in one PostgreSQL
   * transaction, and an error rolls all of them back. Needs the PostgreSQL store.
   * Default: `false` (lease mode).
   */
  transactional?: boolean;
  /**
   * Transactional mode: roll the handler's writes back when it answers with a stored client error
   * (4xx); the response is still stored and replayed. Default: `false` (a stored 4xx commits
   * together with whatever the handler wrote).
   */
  rollbackOnClientError?: boolean;
  /**
   * What a duplicate gets while the first request with its key is running: `'reject'` answers 409
   * at once, `'wait'` waits (up to `waitTimeoutMs`) and then replays the first one's response, or
   * runs itself if the first one failed. Default: `'wait'` in transactional mode, else `'reject'`.
   */
  concurrency?: 'reject' | 'wait';
  /** Longest wait of a duplicate in `'wait'` mode, in milliseconds; then 409. Default: `10_000`. */
  waitTimeoutMs?: number;
  /**
   * Transactional mode: longest one statement of the request's transaction may run, the handler's
   * included, in milliseconds. The database enforces it for that transaction alone (the
   * PostgreSQL store as `SET LOCAL statement_timeout`, sent with the `BEGIN`): a slower statement,
   * lock waits included, is cancelled and fails like any other. A statement still unanswered
   * `storeTimeoutMs` after that (a frozen or unreachable database cancels nothing) closes the
   * transaction's connection: nothing of it commits and the client gets 503. `0` sets neither
   * bound, leaving the database's own settings. Default: `30_000`.
   */
  statementTimeoutMs?: number;
  /**
   * Message handlers (`@EventPattern()`, `@MessagePattern()`): reads a message's idempotency key
   * from its payload (`data`, before pipes) or its transport context. Return `undefined` when it
   * has none. Default: the message's own id (RabbitMQ `messageId`, or what a custom transport's
   * context answers to `idempotencyKey()`).
   */
  messageKey?: (data: unknown, context: unknown) => string | undefined;
}

/** Options of `IdempotencyModule.forRoot()` / the factory of `forRootAsync()`. */
export interface IdempotencyModuleOptions extends IdempotencyRouteOptions {
  /** Name of the request header carrying the key, case-insensitive. Default: `'Idempotency-Key'`. */
  headerName?: string;
  /**
   * With a global registration: HTTP methods whose routes are idempotent whenever the key header
   * is present, without `@Idempotent()`. Opt a route out with `@SkipIdempotency()`.
   * Default: `[]` (only decorated routes).
   */
  autoMethods?: string[];
  /**
   * Upper bound on each store call, in milliseconds. A slower or failing store answers 503 and the
   * handler does not run. Default: `5_000`.
   */
  storeTimeoutMs?: number;
  /**
   * Interval of the purge of expired keys, in milliseconds; `0` turns it off (for those who purge
   * with their own job). Only one instance purges at a time. Default: `60_000`.
   */
  purgeIntervalMs?: number;
  /** Rows deleted per purge statement. Default: `1_000`. */
  purgeBatchSize?: number;
  /**
   * Called with what happened at each step of a request on an idempotent route (its claim, then
   * how it ended; refusals of a missing or invalid key too), for metrics and audit logs. Events
   * carry the route template, the controller and handler names and durations (see
   * `IdempotencyOutcomeEvent`). It must not throw; errors are logged and ignored. Default: none.
   */
  onOutcome?: (event: IdempotencyOutcomeEvent) => void;
  /**
   * Write raw keys into logs and `onOutcome` events. Keys are client-chosen and may be guessable
   * secrets of a sort, so by default only their SHA-256 appears. For development. Default: `false`.
   */
  logRawKeys?: boolean;
  /**
   * Log every outcome of every request at debug level (`Logger.debug`, context `Idempotency`):
   * the outcome, method and route template, the key's SHA-256 (the key itself with
   * `logRawKeys`) and the status when known. Nest's default logger prints debug lines, so this
   * is off unless asked for: a line per request costs more than the module's own work.
   * Default: `false`.
   */
  logOutcomes?: boolean;
  /**
   * Record OpenTelemetry metrics and spans (see docs/operations.md), when the application has
   * `@opentelemetry/api` installed; without an SDK registered they cost next to nothing.
   * `false` turns them off entirely. Default: `true`.
   */
  telemetry?: boolean;
  /**
   * Recovery points for handlers that call other services (see `IdempotencySteps`): the secret
   * their steps' keys are derived with, and how large a step's result may be. Needed by routes
   * that use `IdempotencySteps`; nothing else reads it. Default: unset.
   */
  steps?: IdempotencyStepsOptions;
}

/** Options of the recovery points of `IdempotencySteps`. */
export interface IdempotencyStepsOptions {
  /**
   * The HMAC secret each step's key is derived with, from the scope, the request's key and the
   * step's name: at least 32 bytes, the same on every instance, kept out of source control. A
   * downstream service sees only the derived key, and cannot tell the client's key from it.
   */
  keySecret: string | Buffer;
  /**
   * Longest a step's result may be once stored as JSON, in bytes. A larger one fails the request
   * (500) before its step is recorded: a retry runs the step again, with the same key.
   * Default: `65_536`.
   */
  maxResultBytes?: number;
}

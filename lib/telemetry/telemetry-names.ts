/**
 * The names the module's metrics and spans are published under, in the style of OpenTelemetry's
 * semantic conventions: dotted lower-case names, durations in seconds, enum values in snake_case,
 * and the HTTP attributes under their standard names.
 */

/** Instrumentation scope of the meter and the tracer. */
export const SCOPE_NAME = 'nestjs-idempotency';

export const METRIC = {
  /** Counter, `{request}`: requests on idempotent routes, each once, by how it ended. */
  requests: 'idempotency.requests',
  /** Histogram, `s`: from the request to the store's answer to its claim, less any wait. */
  claimDuration: 'idempotency.claim.duration',
  /** Histogram, `s`: how long a duplicate waited for the request holding its key (`'wait'` mode). */
  waitDuration: 'idempotency.wait.duration',
  /** Histogram, `s`: how long the handler ran. */
  handlerDuration: 'idempotency.handler.duration',
  /** Counter, `{record}`: expired records the purge deleted. */
  purgeDeleted: 'idempotency.purge.deleted',
  /** Histogram, `s`: purge passes, with `error.type` when one failed. */
  purgeDuration: 'idempotency.purge.duration',
  /** Histogram, `s`: runs of a store's upkeep, with `error.type` when one failed. */
  maintenanceDuration: 'idempotency.maintenance.duration',
} as const;

export const SPAN = {
  /** The claim of the key, any wait for a duplicate included. */
  claim: 'idempotency.claim',
  /** A write of the key's record after the handler: complete, mark not replayable or release. */
  record: 'idempotency.record',
} as const;

export const ATTRIBUTE = {
  outcome: 'idempotency.outcome',
  keyHash: 'idempotency.key_hash',
  /** Which write an `idempotency.record` span made: `complete`, `mark_not_replayable`, `release`. */
  recordAction: 'idempotency.record.action',
  /** Class name of the store a purge or upkeep ran on. */
  store: 'idempotency.store',
  route: 'http.route',
  method: 'http.request.method',
  errorType: 'error.type',
} as const;

/** A write of a key's record, as `idempotency.record.action` names it. */
export type RecordAction = 'complete' | 'mark_not_replayable' | 'release';

/**
 * Bucket boundaries of the request histograms, in seconds: from half a millisecond (a claim on
 * Redis) to the default `waitTimeoutMs`, where the SDK's defaults (meant for milliseconds) would
 * put nearly everything in the first bucket.
 */
export const REQUEST_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** Bucket boundaries of purge and upkeep passes, in seconds (a purge pass may take half its interval). */
export const TASK_BUCKETS = [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60];

/** Methods `http.request.method` carries as they are; any other is `_OTHER`, as the conventions say. */
export const KNOWN_METHODS: ReadonlySet<string> = new Set([
  'CONNECT',
  'DELETE',
  'GET',
  'HEAD',
  'OPTIONS',
  'PATCH',
  'POST',
  'PUT',
  'QUERY',
  'TRACE',
]);

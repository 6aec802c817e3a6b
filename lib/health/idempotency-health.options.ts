import { positiveOption, timerDelay, wholeNumber } from '../idempotency-options.defaults';
import type { IdempotencyHealthQuery } from '../store/idempotency-store-health.interface';

/**
 * Options of `IdempotencyHealthIndicator.isHealthy()`. Thresholds are unset by default: the
 * details are reported and only a store that does not answer (or reports a problem it cannot
 * serve with, such as missing partitions) is `down`.
 */
export interface IdempotencyHealthOptions {
  /**
   * Longest wait for each store's answer, in milliseconds; past it the store is `down` (a frozen
   * or unreachable store must not hang the health endpoint). Default: `1_000`.
   */
  timeoutMs?: number;
  /**
   * Longest one detail read may run on the server, in milliseconds (PostgreSQL: a local
   * `statement_timeout`); a detail cut off by it reads `'unknown'`, and the store stays `up`.
   * Less than a third of `timeoutMs`, since a check may run three reads one after another.
   * Default: `200`, or a quarter of `timeoutMs` when that is less.
   */
  detailTimeoutMs?: number;
  /**
   * Most expired keys counted for `purgeBacklog`, so that a large backlog costs no more to report
   * than this many index entries. Default: `10_000`.
   */
  purgeBacklogLimit?: number;
  /**
   * Report the age of the oldest key in flight. On PostgreSQL this reads the in-flight rows, which
   * no default index covers: create `createInFlightIndexSql()`'s partial index before turning it
   * on for a large table, or each check scans up to `detailTimeoutMs`. Default: `true` when
   * `maxOldestInFlightAgeMs` is set, else `false`.
   */
  oldestInFlight?: boolean;
  /** Above this age of the oldest key in flight, in milliseconds, the threshold is exceeded. Default: none. */
  maxOldestInFlightAgeMs?: number;
  /** Above this many expired keys waiting for the purge, the threshold is exceeded. Less than `purgeBacklogLimit`. Default: none. */
  maxPurgeBacklog?: number;
  /**
   * Partitioned PostgreSQL table: below this reach of the partitions past now, in milliseconds,
   * the threshold is exceeded (an early warning that partition maintenance has stopped; short of
   * what claims need, the store is `down` anyway). Default: none.
   */
  minPartitionsAheadMs?: number;
  /**
   * A store's status when it exceeds a threshold: `'degraded'` (the endpoint still answers 200,
   * with the overall status `degraded`) or `'down'` (503). Default: `'degraded'`.
   */
  whenExceeded?: 'degraded' | 'down';
}

/** Reads of one check, one after another, each bounded by `detailTimeoutMs` (a partitioned table's). */
const MAX_DETAIL_READS = 3;

/** The defaults of `IdempotencyHealthOptions`. */
export const IDEMPOTENCY_HEALTH_DEFAULTS = {
  timeoutMs: 1_000,
  detailTimeoutMs: 200,
  purgeBacklogLimit: 10_000,
  whenExceeded: 'degraded',
} as const;

/** The options with defaults applied and checked. */
export interface ResolvedHealthOptions {
  timeoutMs: number;
  query: IdempotencyHealthQuery;
  thresholds: Pick<
    IdempotencyHealthOptions,
    'maxOldestInFlightAgeMs' | 'maxPurgeBacklog' | 'minPartitionsAheadMs'
  >;
  whenExceeded: 'degraded' | 'down';
}

/** Applies the defaults to `options` (left as they are) and checks them. */
export function resolveHealthOptions(options: IdempotencyHealthOptions): ResolvedHealthOptions {
  const D = IDEMPOTENCY_HEALTH_DEFAULTS;
  const timeoutMs = timerDelay(options.timeoutMs, D.timeoutMs, 'health timeoutMs');
  const detailTimeoutMs = positiveOption(
    options.detailTimeoutMs,
    Math.min(D.detailTimeoutMs, timeoutMs / (MAX_DETAIL_READS + 1)),
    'health detailTimeoutMs',
  );
  if (detailTimeoutMs * MAX_DETAIL_READS >= timeoutMs) {
    throw new Error(
      `nestjs-idempotency: health detailTimeoutMs (${detailTimeoutMs}) must be less than a third of timeoutMs (${timeoutMs}): a check runs up to ${MAX_DETAIL_READS} reads one after another, and slow ones would take the store down instead of reading 'unknown'.`,
    );
  }
  const purgeBacklogLimit = wholeNumber(
    positiveOption(options.purgeBacklogLimit, D.purgeBacklogLimit, 'health purgeBacklogLimit'),
    'health purgeBacklogLimit',
  );
  const { maxOldestInFlightAgeMs, maxPurgeBacklog, minPartitionsAheadMs } = options;
  if (maxPurgeBacklog !== undefined && !(maxPurgeBacklog < purgeBacklogLimit)) {
    throw new Error(
      `nestjs-idempotency: health maxPurgeBacklog (${maxPurgeBacklog}) must be less than purgeBacklogLimit (${purgeBacklogLimit}), the most that is counted.`,
    );
  }
  return {
    timeoutMs,
    query: {
      detailTimeoutMs,
      purgeBacklogLimit,
      oldestInFlight: options.oldestInFlight ?? maxOldestInFlightAgeMs !== undefined,
    },
    thresholds: { maxOldestInFlightAgeMs, maxPurgeBacklog, minPartitionsAheadMs },
    whenExceeded: options.whenExceeded ?? D.whenExceeded,
  };
}

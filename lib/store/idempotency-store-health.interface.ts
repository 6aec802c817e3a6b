/**
 * What a health check asks of a store (see `IdempotencyStore.health`). The health indicator of
 * `nestjs-idempotency/health` fills it from its options.
 */
export interface IdempotencyHealthQuery {
  /**
   * Longest one detail query may run on the server, in milliseconds (PostgreSQL: a
   * `statement_timeout` local to the check's read-only transaction). A detail cut off by it is
   * reported as `'unknown'`; the check itself still succeeds.
   */
  detailTimeoutMs: number;
  /** Most expired keys counted for `purgeBacklog`: counting stops at this many. */
  purgeBacklogLimit: number;
  /**
   * Measure `oldestInFlightAgeMs`. On the PostgreSQL store it reads the in-flight rows, which no
   * index of the default table covers (see `createInFlightIndexSql`).
   */
  oldestInFlight: boolean;
  /**
   * How long the caller waits for the whole check, in milliseconds, when it gives up at some
   * point (the health indicator's `timeoutMs`): a store may stop a check nobody waits for any more,
   * but not sooner.
   */
  timeoutMs?: number;
}

/**
 * What a store reports about itself, as JSON. A store that answers at all is reachable; the
 * other fields are the details it can measure cheaply, absent when it cannot.
 */
export interface IdempotencyStoreHealth {
  /** Which store answered: `'postgres'`, `'redis'`, `'in-memory'`, or a custom store's name. */
  kind: string;
  /**
   * Age of the oldest key in flight (claimed, neither finished nor expired), in milliseconds;
   * `null` when none is. Claims abandoned by a crashed process count until a retry takes them over
   * or they expire. `'unknown'` when the measurement was cut off by `detailTimeoutMs`.
   */
  oldestInFlightAgeMs?: number | null | 'unknown';
  /**
   * Expired keys that the purge has not deleted yet: counted up to `purgeBacklogLimit` (see
   * `purgeBacklogCapped`), or, for a partitioned table, estimated from the planner's statistics of
   * the expired partitions not dropped yet. `'unknown'` when cut off by `detailTimeoutMs`.
   */
  purgeBacklog?: number | 'unknown';
  /** The count reached `purgeBacklogLimit`: there are at least that many. */
  purgeBacklogCapped?: boolean;
  /** Partitioned table: partitions whose every key has expired, waiting to be dropped. */
  expiredPartitions?: number;
  /**
   * Partitioned table: how far past now partitions exist without a gap, in milliseconds; 0 when
   * no partition holds the present.
   */
  partitionsAheadMs?: number;
  /**
   * Partitioned table: how far ahead claims made now write (`ttlMs` + `lockTimeoutMs`), in
   * milliseconds. Below it, claims fail for want of a partition.
   */
  partitionsNeededAheadMs?: number;
  /**
   * What keeps the store from serving although it answered (missing partitions, say). Any
   * problem makes the store unhealthy. Absent when there is none.
   */
  problems?: string[];
  /** Anything else worth saying, for a human reader. */
  note?: string;
}

import type pg from 'pg';

/** What one run left in the database for the keys it sent. */
export interface ExactlyOnceCheck {
  /** Distinct keys sent. */
  keysSent: number;
  /** Distinct keys that got a 2xx. */
  keysAcknowledged: number;
  /** Keys with at least one row in `bench_orders` (executed). */
  keysExecuted: number;
  /** Rows in `bench_orders` for the keys. */
  rows: number;
  /** Rows beyond the first of their key: duplicate executions. Must be 0. */
  duplicates: number;
  /** Keys answered 2xx without a row: a lost execution. Must be 0. */
  acknowledgedWithoutRow: number;
  /** Idempotency records of the keys still `in_flight` once the app was idle. Must be 0. */
  stuckInFlight: number;
  /**
   * Unexpired idempotency records beyond the first of their key. Must be 0: on a partitioned
   * table no unique index stops a second one, only the store's per-key lock.
   */
  duplicateRecords: number;
}

/** Where an app keeps its idempotency records, as the check reads them. */
export interface IdempotencyRecords {
  /**
   * For `keys` (of the anonymous scope, as the bench sends them): records still in flight once
   * the app is idle, and live records beyond the first of a key.
   */
  inspect(keys: readonly string[]): Promise<{ stuck: number; duplicateRecords: number }>;
}

/** Records in a PostgreSQL table of the store's shape (single or partitioned). */
export function postgresRecords(database: pg.Pool, table: string): IdempotencyRecords {
  return {
    async inspect(keys) {
      const { rows } = await database.query<{ stuck: number; duplicate_records: number }>(
        `WITH live AS (
           SELECT count(*)::int AS n
             FROM ${table} r
            WHERE r.scope = '' AND r.key = ANY($1::varchar[]) AND r.expires_at > now()
            GROUP BY r.key
         )
         SELECT (SELECT count(*)::int FROM ${table} r
                  WHERE r.scope = '' AND r.key = ANY($1::varchar[]) AND r.state = 'in_flight') AS stuck,
                (SELECT coalesce(sum(n - 1), 0)::int FROM live) AS duplicate_records`,
        [keys],
      );
      return { stuck: rows[0].stuck, duplicateRecords: rows[0].duplicate_records };
    },
  };
}

/**
 * Counts, for the keys a run sent, the rows in `bench_orders`, and the records in flight or
 * duplicated where the app keeps them. `sent` may also be a key set created before the run
 * (replays): then rows must equal keys.
 */
export async function checkExactlyOnce(
  database: pg.Pool,
  records: IdempotencyRecords,
  sent: ReadonlySet<string>,
  acknowledged: ReadonlySet<string>,
): Promise<ExactlyOnceCheck> {
  const keys = [...sent];
  const { rows } = await database.query<{
    executed: number;
    rows: number;
    duplicates: number;
  }>(
    `WITH counted AS (
       SELECT o.key, count(*)::int AS n
         FROM bench_orders o
        WHERE o.key = ANY($1::varchar[])
        GROUP BY o.key
     )
     SELECT (SELECT count(*)::int FROM counted) AS executed,
            (SELECT coalesce(sum(n), 0)::int FROM counted) AS rows,
            (SELECT coalesce(sum(n - 1), 0)::int FROM counted) AS duplicates`,
    [keys],
  );
  const missing = await database.query<{ missing: number }>(
    `SELECT count(*)::int AS missing
       FROM unnest($1::varchar[]) AS a(key)
      WHERE NOT EXISTS (SELECT 1 FROM bench_orders o WHERE o.key = a.key)`,
    [[...acknowledged]],
  );
  const { stuck, duplicateRecords } = await records.inspect(keys);
  return {
    keysSent: sent.size,
    keysAcknowledged: acknowledged.size,
    keysExecuted: rows[0].executed,
    rows: rows[0].rows,
    duplicates: rows[0].duplicates,
    acknowledgedWithoutRow: missing.rows[0].missing,
    stuckInFlight: stuck,
    duplicateRecords,
  };
}

/** Adds up the checks of a scenario's rounds. */
export function addChecks(checks: readonly ExactlyOnceCheck[]): ExactlyOnceCheck {
  const total: ExactlyOnceCheck = {
    keysSent: 0,
    keysAcknowledged: 0,
    keysExecuted: 0,
    rows: 0,
    duplicates: 0,
    acknowledgedWithoutRow: 0,
    stuckInFlight: 0,
    duplicateRecords: 0,
  };
  for (const check of checks) {
    for (const field of Object.keys(total) as (keyof ExactlyOnceCheck)[]) {
      total[field] += check[field];
    }
  }
  return total;
}

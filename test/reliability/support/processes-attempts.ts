import type { TestDatabase } from '../../utils/test-database';

/**
 * Executions of the sample app's payments handler, as it logs them in `payment_attempts` (a row
 * at the start of each execution, `finished_at` at its end, both on the database clock).
 */
export interface AttemptRow {
  id: string;
  client_id: string;
  idempotency_key: string | null;
  /** The app process that ran it. */
  pid: number;
  started_at: Date;
  finished_at: Date | null;
}

/** Two executions of one key whose time intervals intersect. */
export interface OverlapRow {
  client_id: string;
  idempotency_key: string;
  first_id: string;
  second_id: string;
}

/** Two consecutive executions of one key closer together than the key's TTL. */
export interface EarlyRerunRow {
  client_id: string;
  idempotency_key: string;
  id: string;
  gap_ms: number;
}

export function allAttempts(db: TestDatabase): Promise<AttemptRow[]> {
  return db.query<AttemptRow>(
    `SELECT id, client_id, idempotency_key, pid, started_at, finished_at
       FROM payment_attempts ORDER BY started_at, id`,
  );
}

/** Executions grouped by `client_id` and key: `"<client> <key>"` -> count. */
export async function attemptsPerKey(db: TestDatabase): Promise<Map<string, number>> {
  const rows = await db.query<{ client_id: string; idempotency_key: string | null; n: number }>(
    `SELECT client_id, idempotency_key, count(*)::int AS n
       FROM payment_attempts GROUP BY client_id, idempotency_key`,
  );
  return new Map(rows.map((row) => [scopedKey(row.client_id, row.idempotency_key ?? ''), row.n]));
}

/** How a key is named across the suite's maps: its scope (client) and the key. */
export function scopedKey(clientId: string, key: string): string {
  return `${clientId} ${key}`;
}

/**
 * Pairs of executions of one key (same client, same key) whose intervals intersect, ends
 * included. An execution that never finished is taken to end at `openEndsAt` (the moment its
 * process was known to be dead), or never when that is `null`.
 */
export function overlappingAttempts(
  db: TestDatabase,
  openEndsAt: Date | null,
): Promise<OverlapRow[]> {
  return db.query<OverlapRow>(
    `WITH spans AS (
       SELECT id, client_id, idempotency_key,
              tstzrange(started_at,
                        greatest(started_at, coalesce(finished_at, $1::timestamptz, 'infinity')),
                        '[]') AS span
         FROM payment_attempts
        WHERE idempotency_key IS NOT NULL
     )
     SELECT a.client_id, a.idempotency_key, a.id AS first_id, b.id AS second_id
       FROM spans a
       JOIN spans b ON b.client_id = a.client_id AND b.idempotency_key = a.idempotency_key
                   AND b.id > a.id
      WHERE a.span && b.span`,
    [openEndsAt],
  );
}

/**
 * Executions that started less than `ttlMs` after the previous execution of the same key finished:
 * a key is only new again once its stored response expired, which is at least `ttlMs` after that.
 */
export function earlyReruns(db: TestDatabase, ttlMs: number): Promise<EarlyRerunRow[]> {
  return db.query<EarlyRerunRow>(
    `SELECT client_id, idempotency_key, id,
            (extract(epoch FROM (started_at - previous_finished)) * 1000)::float8 AS gap_ms
       FROM (SELECT id, client_id, idempotency_key, started_at,
                    lag(finished_at) OVER (PARTITION BY client_id, idempotency_key
                                           ORDER BY started_at, id) AS previous_finished,
                    row_number() OVER (PARTITION BY client_id, idempotency_key
                                       ORDER BY started_at, id) AS n
               FROM payment_attempts
              WHERE idempotency_key IS NOT NULL) t
      WHERE n > 1
        AND (previous_finished IS NULL
             OR started_at < previous_finished + $1::float8 * interval '1 millisecond')`,
    [ttlMs],
  );
}

/** The database's clock now (`clock_timestamp()`), to compare with the times it recorded. */
export async function databaseNow(db: TestDatabase): Promise<Date> {
  return (await db.query<{ now: Date }>('SELECT clock_timestamp() AS now'))[0].now;
}

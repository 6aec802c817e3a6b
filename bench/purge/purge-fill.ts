import { createHash } from 'node:crypto';
import pg from 'pg';
import { createIdempotencyTableSql } from '../../lib/postgres/schema/idempotency-table.sql';
import { settleFilledTable } from '../runner/fill';

/** What one fill left in the table. */
export interface PurgeFillResult {
  rows: number;
  expiredRows: number;
  /** `ordered`: rows lie in the heap in the order they expire, as appended over time. */
  layout: 'ordered' | 'scattered';
  seconds: number;
  /** Table with its indexes and TOAST, after VACUUM. */
  totalBytes: number;
}

/** A key the fill created, with the fingerprint its row holds. */
export interface FilledKey {
  scope: string;
  key: string;
  fingerprint: string;
}

/**
 * Recreates `idempotency_records` with the library's DDL and fills it with `rows` completed
 * records shaped like those of the main bench's fill. The first `expiredShare` of them expired
 * over the last 24 hours (up to a minute ago); the others expire between 1 and 24 hours from now,
 * so none expires while the purge is measured and the backlog is exactly the expired rows.
 * Autovacuum is off for the table: a vacuum landing in some windows and not in others would be
 * noise, so the run vacuums once after the purge and reports what that cost. Ends with VACUUM
 * ANALYZE and a CHECKPOINT, like a table that has been live for a while.
 */
export async function fillPurgeTable(
  databaseUrl: string,
  rows: number,
  expiredShare: number,
  scattered: boolean,
): Promise<PurgeFillResult> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const started = performance.now();
  const expired = Math.round(rows * expiredShare);
  try {
    await client.query('DROP TABLE IF EXISTS idempotency_records');
    await client.query(createIdempotencyTableSql());
    await client.query('ALTER TABLE idempotency_records SET (autovacuum_enabled = false)');
    // Generated in expiry order. "scattered" shuffles the insertion order, which spreads the
    // expired rows over every heap page: a batch then dirties (and, first after a checkpoint,
    // logs a full image of) many more pages per row.
    const order = scattered ? 'ORDER BY md5(g.i::text)' : '';
    await client.query(
      `INSERT INTO idempotency_records
         (scope, key, fingerprint, state, lock_token, response_status, response_headers,
          response_body, created_at, completed_at, expires_at)
       SELECT f.scope, f.key, encode(sha256(convert_to(f.key, 'UTF8')), 'hex'), 'completed',
              gen_random_uuid(), 201, '{"content-type":"application/json; charset=utf-8"}',
              convert_to('{"id":"' || f.i || '","key":"' || f.key || '","createdAt":"'
                         || f.expires_at - interval '24 hours' || '"}', 'UTF8'),
              f.expires_at - interval '24 hours',
              f.expires_at - interval '24 hours' + interval '25 milliseconds', f.expires_at
         FROM (
           SELECT g.i,
                  CASE WHEN g.i % 10 = 0 THEN '' ELSE 'client-' || (g.i % 5000) END AS scope,
                  md5('purge-bench-' || g.i)::uuid::text AS key,
                  CASE WHEN g.i <= $2
                       THEN now() - interval '24 hours'
                            + (g.i::float8 / $2) * (interval '24 hours' - interval '1 minute')
                       ELSE now() + interval '1 hour'
                            + ((g.i - $2)::float8 / ($1 - $2)) * interval '23 hours'
                  END AS expires_at
             FROM (SELECT i FROM generate_series(1, $1::int) AS i) g ${order}
         ) f`,
      [rows, expired],
    );
    const settled = await settleFilledTable(client);
    return {
      rows,
      ...settled,
      layout: scattered ? 'scattered' : 'ordered',
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await client.end();
  }
}

/**
 * `count` of the live keys the fill created (picked at random), computed the way the fill's SQL
 * computes them, so that no query is needed to find keys to replay.
 */
export function liveFilledKeys(rows: number, expiredShare: number, count: number): FilledKey[] {
  const firstLive = Math.round(rows * expiredShare) + 1;
  return Array.from({ length: count }, () => {
    const i = firstLive + Math.floor(Math.random() * (rows - firstLive + 1));
    const hex = createHash('md5').update(`purge-bench-${i}`).digest('hex');
    const key = [0, 8, 12, 16, 20].map((at, n, all) => hex.slice(at, all[n + 1])).join('-');
    return {
      scope: i % 10 === 0 ? '' : `client-${i % 5000}`,
      key,
      fingerprint: createHash('sha256').update(key).digest('hex'),
    };
  });
}

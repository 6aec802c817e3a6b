import pg from 'pg';

/** What filling the idempotency table took and left. */
export interface FillResult {
  rows: number;
  /** Rows already expired (left for the purge). */
  expiredRows: number;
  seconds: number;
  /** Table with its indexes and TOAST, after VACUUM. */
  totalBytes: number;
}

/**
 * Fills `idempotency_records` the way a busy service's table looks with the default 24 h TTL:
 * created over the last 26 hours by 5 000 clients (one key in ten anonymous), so about one row in
 * thirteen has expired and waits for the purge; one in a thousand is a claim left in flight by a
 * crashed process. Keys are UUID-shaped and spread over the whole primary key, like real ones.
 * Then settles it (settleFilledTable).
 */
export async function fillIdempotencyTable(databaseUrl: string, rows: number): Promise<FillResult> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const started = performance.now();
  try {
    await client.query(
      `INSERT INTO idempotency_records AS r
         (scope, key, fingerprint, state, lock_token, locked_until, response_status,
          response_headers, response_body, created_at, completed_at, expires_at)
       SELECT f.scope, f.key, encode(sha256(convert_to(f.key, 'UTF8')), 'hex'),
              CASE WHEN f.in_flight THEN 'in_flight' ELSE 'completed' END,
              gen_random_uuid(),
              CASE WHEN f.in_flight THEN f.created_at + interval '60 seconds' END,
              CASE WHEN f.in_flight THEN NULL ELSE 201 END,
              CASE WHEN f.in_flight THEN NULL
                   ELSE '{"content-type":"application/json; charset=utf-8"}' END,
              CASE WHEN f.in_flight THEN NULL
                   ELSE convert_to('{"id":"' || f.i || '","key":"' || f.key
                        || '","createdAt":"' || f.created_at || '"}', 'UTF8') END,
              f.created_at,
              CASE WHEN f.in_flight THEN NULL ELSE f.created_at + interval '25 milliseconds' END,
              f.created_at + CASE WHEN f.in_flight THEN interval '60 seconds' ELSE interval '0' END
                           + interval '24 hours'
         FROM (
           SELECT i,
                  CASE WHEN i % 10 = 0 THEN '' ELSE 'client-' || (i % 5000) END AS scope,
                  md5('bench-fill-' || i)::uuid::text AS key,
                  now() - random() * interval '26 hours' AS created_at,
                  i % 1000 = 0 AS in_flight
             FROM generate_series(1, $1::int) AS i
         ) f`,
      [rows],
    );
    const settled = await settleFilledTable(client);
    return { rows, ...settled, seconds: (performance.now() - started) / 1000 };
  } finally {
    await client.end();
  }
}

/**
 * After a fill: VACUUM ANALYZE (visibility map, hint bits and statistics, as on a long-running
 * table) and a CHECKPOINT, so the fill's writes are not flushed during the measurements; then the
 * table's size and how many of its rows have expired.
 */
export async function settleFilledTable(
  client: pg.Client,
): Promise<{ expiredRows: number; totalBytes: number }> {
  await client.query('VACUUM ANALYZE idempotency_records');
  await client.query('CHECKPOINT').catch(() => undefined); // needs pg_checkpoint on a given server
  const { rows } = await client.query<{ total: string; expired: number }>(
    `SELECT pg_total_relation_size('idempotency_records')::text AS total,
            (SELECT count(*)::int FROM idempotency_records WHERE expires_at <= now()) AS expired`,
  );
  return { expiredRows: rows[0].expired, totalBytes: Number(rows[0].total) };
}

-- 500 000 expired records in yesterday's partition, shaped like the bench's.
SELECT date_bin('1 day', now(), timestamptz '2000-01-01 00:00+00') AS today \gset
INSERT INTO idempotency_records (scope, key, fingerprint, state, lock_token, response_status,
                                 response_headers, response_body, created_at, completed_at, expires_at)
SELECT 'client-' || (i % 5000), md5('k' || i)::uuid::text, md5(i::text), 'completed', gen_random_uuid(),
       201, '{"content-type":"application/json; charset=utf-8"}', convert_to(repeat('x', 90), 'UTF8'),
       t - interval '24 hours', t - interval '24 hours', t
  FROM generate_series(1, 500000) i,
       LATERAL (SELECT timestamptz :'today' - interval '1 day' + (i / 500000.0) * interval '23 hours' AS t) x;
VACUUM ANALYZE idempotency_records;
CHECKPOINT;
SELECT pg_size_pretty(pg_total_relation_size('idempotency_records_yesterday')) AS partition_size;

-- A partition for yesterday (normally created ahead of time), with an expired record of 'k-old'.
SELECT date_bin('1 day', now(), timestamptz '2000-01-01 00:00+00') AS today \gset
CREATE TABLE idempotency_records_yesterday PARTITION OF idempotency_records
  FOR VALUES FROM (timestamptz :'today' - interval '1 day') TO (:'today');
INSERT INTO idempotency_records (scope, key, fingerprint, state, lock_token, response_status,
                                 response_headers, response_body, completed_at, expires_at)
VALUES ('s', 'k-old', 'fp-1', 'completed', gen_random_uuid(), 201, '{}', '\x7b7d',
        timestamptz :'today' - interval '1 day', timestamptz :'today' - interval '1 minute');
-- The client reuses the key after its TTL with another request: a new claim, in a new partition.
SELECT outcome FROM idempotency_claim('s', 'k-old', 'fp-2', gen_random_uuid(), 60000, 86400000);
SELECT tableoid::regclass AS partition, key, fingerprint, state, expires_at > now() AS live
  FROM idempotency_records WHERE key = 'k-old' ORDER BY expires_at;
-- The purge: every partition whose upper bound has passed.
SELECT * FROM idempotency_expired_partitions;

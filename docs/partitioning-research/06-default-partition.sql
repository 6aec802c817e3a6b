\set VERBOSITY terse
\i yesterday.sql
-- Without a default partition, a row beyond the partitions created ahead fails its INSERT:
SELECT outcome FROM idempotency_claim('s', 'long-ttl', 'fp', gen_random_uuid(), 60000, 30 * 86400000::float8);
-- With one, the row lands there ...
CREATE TABLE idempotency_records_default PARTITION OF idempotency_records DEFAULT;
SELECT outcome FROM idempotency_claim('s', 'long-ttl', 'fp', gen_random_uuid(), 60000, 30 * 86400000::float8);
-- ... a partition for its range can no longer be added ...
SELECT idempotency_create_partitions('32 days');
-- ... and the purge may not detach concurrently:
ALTER TABLE idempotency_records DETACH PARTITION idempotency_records_yesterday CONCURRENTLY;

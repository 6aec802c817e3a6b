ALTER TABLE idempotency_records DETACH PARTITION idempotency_records_yesterday CONCURRENTLY;
DROP TABLE idempotency_records_yesterday;
SELECT outcome, state, fingerprint FROM idempotency_claim('s', 'k-old', 'fp-2', gen_random_uuid(), 60000, 86400000);
SELECT tableoid::regclass AS partition, key, fingerprint, state FROM idempotency_records WHERE key = 'k-old';

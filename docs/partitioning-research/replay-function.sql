\set r random(1, 10000)
SELECT 'r' || :r AS k \gset
SELECT outcome FROM idempotency_claim('s', :k, 'fp', gen_random_uuid(), 60000, 86400000);

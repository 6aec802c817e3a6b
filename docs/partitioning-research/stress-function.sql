SELECT (extract(epoch FROM clock_timestamp()) * 50)::bigint AS k \gset
SELECT outcome FROM idempotency_claim('s', ':k', 'fp', gen_random_uuid(), 60000, 86400000);

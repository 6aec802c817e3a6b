-- 20 keys per 200 ms, 20 ms leases that run out before the 25 ms "handler" completes: claims take
-- keys over and move rows between 1-minute partitions (TTL 1-120 s) while completes race them.
\set r random(1, 20)
\set ttl random(1000, 120000)
SELECT (extract(epoch FROM clock_timestamp()) * 5)::bigint || '-' || :r AS k, gen_random_uuid() AS t \gset
SELECT outcome FROM idempotency_claim('s', :k, 'fp', :t, 20, :ttl);
\sleep 25 ms
UPDATE idempotency_records SET state = 'completed', locked_until = NULL, completed_at = now(), expires_at = now() + :ttl * interval '1 ms' WHERE scope = 's' AND key = :k AND lock_token = :t AND state = 'in_flight';

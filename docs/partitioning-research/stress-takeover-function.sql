-- 20 keys per 200 ms, 20 ms leases that run out before the 25 ms "handler" completes: claims take
-- keys over and move rows between 1-minute partitions (TTL 1-120 s) while completes race them.
\set r random(1, 20)
\set ttl random(1000, 120000)
SELECT (extract(epoch FROM clock_timestamp()) * 5)::bigint || '-' || :r AS k, gen_random_uuid() AS t \gset
SELECT coalesce(claimed_expires_at, 'infinity') AS e FROM idempotency_claim('s', :k, 'fp', :t, 20, :ttl) \gset
\sleep 25 ms
SELECT idempotency_complete('s', :k, :t, 201::smallint, '{}', '\x7b7d'::bytea, :ttl, :e);

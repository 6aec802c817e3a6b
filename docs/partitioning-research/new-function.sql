SELECT gen_random_uuid() AS k, gen_random_uuid() AS t \gset
SELECT coalesce(claimed_expires_at, 'infinity') AS e FROM idempotency_claim('s', :k, 'fp', :t, 60000, 86400000) \gset
SELECT idempotency_complete('s', :k, :t, 201::smallint, '{}', '\x7b7d'::bytea, 86400000, :e);

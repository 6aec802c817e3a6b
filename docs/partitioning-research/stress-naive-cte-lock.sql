-- All clients claim the same new key for 20 ms, then the next one.
SELECT (extract(epoch FROM clock_timestamp()) * 50)::bigint AS k \gset
-- The lock taken inside the claim statement: its snapshot was taken before the lock was granted.
WITH lock AS MATERIALIZED (
  SELECT pg_advisory_xact_lock(idempotency_key_lock('s', ':k')) AS got
), existing AS (
  SELECT 1 FROM idempotency_records e
   WHERE e.scope = 's' AND e.key = ':k' AND e.expires_at > now()
)
INSERT INTO idempotency_records (scope, key, fingerprint, state, lock_token, locked_until, expires_at)
SELECT 's', ':k', 'fp', 'in_flight', gen_random_uuid(), now() + interval '60 s',
       now() + interval '1 day 60 s'
  FROM lock WHERE NOT EXISTS (SELECT 1 FROM existing);

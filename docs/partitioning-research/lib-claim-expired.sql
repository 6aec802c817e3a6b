\timing on
WITH existing AS (
  SELECT e.state, e.fingerprint, e.response_status, e.response_headers,
         e.response_body,
         ceil(extract(epoch FROM (e.locked_until - now())) * 1000)::float8 AS lease_left_ms,
         (
  e.expires_at <= now()
  OR (e.state = 'in_flight' AND e.locked_until <= now()
      AND e.fingerprint IS NOT DISTINCT FROM 'fp'::varchar)
) AS claimable
    FROM idempotency_records e
   WHERE e.scope = 's' AND e.key = 'expired-key'
), claimed AS (
  INSERT INTO idempotency_records AS r (scope, key, fingerprint, state, lock_token, locked_until, expires_at)
  SELECT 's', 'expired-key', 'fp'::varchar, 'in_flight', gen_random_uuid(),
         now() + 60000::float8 * interval '1 millisecond',
         now() + (60000::float8 + 86400000::float8) * interval '1 millisecond'
   WHERE NOT EXISTS (SELECT 1 FROM existing WHERE NOT claimable)
  ON CONFLICT (scope, key) DO UPDATE
     SET fingerprint = EXCLUDED.fingerprint, state = 'in_flight', lock_token = EXCLUDED.lock_token,
         locked_until = EXCLUDED.locked_until, expires_at = EXCLUDED.expires_at,
         response_status = NULL, response_headers = NULL, response_body = NULL,
         created_at = now(), completed_at = NULL
   WHERE (
  r.expires_at <= now()
  OR (r.state = 'in_flight' AND r.locked_until <= now()
      AND r.fingerprint IS NOT DISTINCT FROM EXCLUDED.fingerprint)
)
  RETURNING r.state
)
SELECT 'claimed' AS outcome, NULL::varchar AS state, NULL::varchar AS fingerprint,
       NULL::smallint AS response_status, NULL::text AS response_headers,
       NULL::bytea AS response_body, NULL::float8 AS lease_left_ms
  FROM claimed
UNION ALL
SELECT 'existing', state, fingerprint, response_status, response_headers, response_body,
       lease_left_ms
  FROM existing
 WHERE NOT claimable AND NOT EXISTS (SELECT 1 FROM claimed);

INSERT INTO idempotency_records (scope, key, fingerprint, state, lock_token, response_status,
                                 response_headers, response_body, completed_at, expires_at)
SELECT 's', 'r' || i, 'fp', 'completed', gen_random_uuid(), 201, '{}', '\x7b7d', now(),
       now() + interval '20 hours'
  FROM generate_series(1, 10000) i;

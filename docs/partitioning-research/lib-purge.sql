
    WITH purger AS (SELECT pg_try_advisory_xact_lock(hashtext('idempotency_records:purge')) AS ok)
    DELETE FROM idempotency_records
     WHERE (SELECT ok FROM purger)
       AND ctid = ANY (ARRAY(
             SELECT ctid FROM idempotency_records
              WHERE expires_at <= now()
              ORDER BY expires_at
              LIMIT 1000
              FOR UPDATE SKIP LOCKED));

SELECT count(*) AS keys,
       count(*) FILTER (WHERE n > 1) AS keys_with_two_live_rows,
       coalesce(sum(n - 1), 0) AS extra_rows
  FROM (SELECT count(*) AS n FROM idempotency_records WHERE expires_at > now() GROUP BY scope, key) c;

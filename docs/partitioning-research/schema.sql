-- The partitioned design as first tested (2026-11-28, PostgreSQL 18.4), and the fixture that the
-- numbered scripts load into a fresh database. RANGE partitions on expires_at; exactly-once from a
-- per-key advisory lock that every writer takes in a statement of its own, before the statements
-- that read and write the key. Here the lock and the statements sit in plpgsql functions; the store
-- sends them instead as separate statements of one pipeline (lib/postgres/), which needs no
-- functions in the database. The SQL-level figures of docs/partitioning.md ("Research results")
-- were measured on these functions.
CREATE TABLE idempotency_records (
  scope            varchar(255) NOT NULL,
  key              varchar(255) NOT NULL,
  fingerprint      varchar(64),
  state            varchar(16)  NOT NULL,
  lock_token       uuid         NOT NULL,
  locked_until     timestamptz,
  response_status  smallint,
  response_headers text,
  response_body    bytea,
  created_at       timestamptz  NOT NULL DEFAULT now(),
  completed_at     timestamptz,
  expires_at       timestamptz  NOT NULL,
  -- Unique only with expires_at (all PostgreSQL allows): the lock, not this key, keeps one live row
  -- per (scope, key). It is the lookup index: (scope, key) and a range on expires_at.
  CONSTRAINT idempotency_records_pkey PRIMARY KEY (scope, key, expires_at)
) PARTITION BY RANGE (expires_at);
-- No DEFAULT partition: it would forbid DETACH ... CONCURRENTLY, and every new partition would
-- have to scan it under an ACCESS EXCLUSIVE lock. A row with no partition fails its INSERT: the
-- claim fails closed (503) instead of silently landing somewhere the purge cannot drop.

-- The lock id of a key: the one transactional mode already takes (KEY_LOCK in idempotency.sql.ts).
CREATE FUNCTION idempotency_key_lock(p_scope text, p_key text) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN hashtextextended(p_scope || E'\n' || p_key, 0);

-- Creates the missing partitions of `width` (aligned to it, UTC) from the current one up to
-- now() + ahead. CREATE + ATTACH (SHARE UPDATE EXCLUSIVE on the parent) instead of
-- CREATE TABLE ... PARTITION OF (ACCESS EXCLUSIVE on the parent: it would queue every claim behind
-- any open transaction that touched the table).
CREATE FUNCTION idempotency_create_partitions(ahead interval, width interval DEFAULT '1 day')
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
  lower timestamptz := date_bin(width, now(), timestamptz '2000-01-01 00:00+00');
  name text;
  created int := 0;
BEGIN
  WHILE lower < now() + ahead LOOP
    name := 'idempotency_records_p' || to_char(lower AT TIME ZONE 'UTC', 'YYYYMMDD"t"HH24MISS');
    IF to_regclass(name) IS NULL THEN
      EXECUTE format('CREATE TABLE %I (LIKE idempotency_records INCLUDING DEFAULTS)', name);
      -- The bound as a CHECK first: ATTACH then skips its validating scan (empty here anyway).
      EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (expires_at >= %L AND expires_at < %L)',
                     name, name || '_bound', lower, lower + width);
      EXECUTE format('ALTER TABLE idempotency_records ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                     name, lower, lower + width);
      EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', name, name || '_bound');
      created := created + 1;
    END IF;
    lower := lower + width;
  END LOOP;
  RETURN created;
END $$;

-- Partitions whose every row has expired (upper bound <= now()), oldest first: what the purge
-- detaches (CONCURRENTLY, outside any transaction block) and drops.
CREATE VIEW idempotency_expired_partitions AS
SELECT c.oid::regclass AS partition, b.upper
  FROM pg_inherits i
  JOIN pg_class c ON c.oid = i.inhrelid
  CROSS JOIN LATERAL (
    SELECT (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz AS upper
  ) b
 WHERE i.inhparent = 'idempotency_records'::regclass AND b.upper <= now()
 ORDER BY b.upper;

-- Lease mode claim (and, with p_wait = false, transactional mode's, inside the caller's READ
-- COMMITTED transaction). Same result columns as the library's claim statement.
CREATE FUNCTION idempotency_claim(
  p_scope varchar, p_key varchar, p_fingerprint varchar, p_token uuid,
  p_lease_ms float8, p_ttl_ms float8, p_wait boolean DEFAULT true)
RETURNS TABLE (outcome text, state varchar, fingerprint varchar, response_status smallint,
               response_headers text, response_body bytea, lease_left_ms float8,
               claimed_expires_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  live idempotency_records%ROWTYPE;
  has_live boolean;
  new_expires_at timestamptz := now() + (p_lease_ms + p_ttl_ms) * interval '1 millisecond';
BEGIN
  FOR pass IN 1..2 LOOP
    IF pass = 2 THEN
      -- Serialise with every other writer of the key, in a statement of its own: each statement of
      -- a VOLATILE function takes a new snapshot (READ COMMITTED), so the SELECT below sees all
      -- that the previous holder of the lock committed.
      IF p_wait THEN
        PERFORM pg_advisory_xact_lock(idempotency_key_lock(p_scope, p_key));
      ELSIF NOT pg_try_advisory_xact_lock(idempotency_key_lock(p_scope, p_key)) THEN
        RETURN QUERY SELECT 'busy', NULL::varchar, NULL::varchar, NULL::smallint, NULL::text,
          NULL::bytea, NULL::float8, NULL::timestamptz;
        RETURN;
      END IF;
    END IF;
    SELECT * INTO live FROM idempotency_records e
     WHERE e.scope = p_scope AND e.key = p_key AND e.expires_at > now();
    has_live := FOUND;
    IF has_live AND NOT (live.state = 'in_flight' AND live.locked_until <= now()
                         AND live.fingerprint IS NOT DISTINCT FROM p_fingerprint) THEN
      -- Replay, in flight or mismatch: on the first pass, answered without taking the lock.
      RETURN QUERY SELECT 'existing', live.state, live.fingerprint, live.response_status,
        live.response_headers, live.response_body,
        ceil(extract(epoch FROM (live.locked_until - now())) * 1000)::float8, NULL::timestamptz;
      RETURN;
    END IF;
  END LOOP;
  IF has_live THEN
    -- Its lease ran out (same request): take it over. The new expires_at may move the row to
    -- another partition; no other writer can race the move, all of them hold this key's lock.
    UPDATE idempotency_records e
       SET lock_token = p_token, locked_until = now() + p_lease_ms * interval '1 millisecond',
           expires_at = new_expires_at, created_at = now()
     WHERE e.scope = p_scope AND e.key = p_key AND e.expires_at = live.expires_at;
  ELSE
    -- New, or only expired rows left (in older partitions, dropped with them).
    INSERT INTO idempotency_records (scope, key, fingerprint, state, lock_token, locked_until, expires_at)
    VALUES (p_scope, p_key, p_fingerprint, 'in_flight', p_token,
            now() + p_lease_ms * interval '1 millisecond', new_expires_at);
  END IF;
  -- The row's expires_at goes into the claim's handle: complete and release then touch one
  -- partition instead of probing the (scope, key) index of every partition.
  RETURN QUERY SELECT 'claimed', NULL::varchar, NULL::varchar, NULL::smallint, NULL::text,
    NULL::bytea, NULL::float8, new_expires_at;
END $$;

-- complete / mark / release take the same lock first: with a lock taken inside one statement, an
-- UPDATE whose snapshot predates a concurrent move of the row to another partition fails with
-- 40001 "tuple to be locked was already moved to another partition due to concurrent update".
CREATE FUNCTION idempotency_complete(
  p_scope varchar, p_key varchar, p_token uuid, p_status smallint, p_headers text, p_body bytea,
  p_ttl_ms float8, p_expires_at timestamptz)
RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(idempotency_key_lock(p_scope, p_key));
  UPDATE idempotency_records
     SET state = 'completed', response_status = p_status, response_headers = p_headers,
         response_body = p_body, locked_until = NULL, completed_at = now(),
         expires_at = now() + p_ttl_ms * interval '1 millisecond'
   WHERE scope = p_scope AND key = p_key AND expires_at = p_expires_at AND lock_token = p_token
     AND state = 'in_flight';
  RETURN FOUND;
END $$;

CREATE FUNCTION idempotency_release(
  p_scope varchar, p_key varchar, p_token uuid, p_expires_at timestamptz)
RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(idempotency_key_lock(p_scope, p_key));
  DELETE FROM idempotency_records
   WHERE scope = p_scope AND key = p_key AND expires_at = p_expires_at AND lock_token = p_token
     AND state <> 'completed';
  RETURN FOUND;
END $$;

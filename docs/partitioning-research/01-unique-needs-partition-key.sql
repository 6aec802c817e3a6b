-- Why the partitioned table's primary key is (scope, key, expires_at) and cannot keep a key unique
-- by itself, so that one live row per key has to come from a per-key lock (docs/partitioning.md,
-- "Why the obvious designs fail"). Each statement tries one way to keep a unique (scope, key) on a
-- table partitioned for a purge by drop; the comments give what PostgreSQL 18.4 answered.
--
-- Run: psql -X -d <an empty scratch database> -f 01-unique-needs-partition-key.sql
-- (needs no other file; the errors are the result).

-- 1. The table partitioned by expiry, keeping its primary key (scope, key): refused.
--    ERROR:  unique constraint on partitioned table must include all partitioning columns
--    DETAIL: PRIMARY KEY constraint on table "t1" lacks column "expires_at" which is part of the
--            partition key.
CREATE TABLE t1 (
  scope varchar(255) NOT NULL, key varchar(255) NOT NULL, expires_at timestamptz NOT NULL,
  CONSTRAINT t1_pkey PRIMARY KEY (scope, key)
) PARTITION BY RANGE (expires_at);

-- 2. PRIMARY KEY (scope, key, expires_at): accepted, but unique only with expires_at. Two rows of
--    one key with different expiries both insert ...
CREATE TABLE t2 (
  scope varchar(255) NOT NULL, key varchar(255) NOT NULL, expires_at timestamptz NOT NULL,
  CONSTRAINT t2_pkey PRIMARY KEY (scope, key, expires_at)
) PARTITION BY RANGE (expires_at);
CREATE TABLE t2_a PARTITION OF t2 FOR VALUES FROM ('2026-01-01') TO ('2026-01-02');
CREATE TABLE t2_b PARTITION OF t2 FOR VALUES FROM ('2026-01-02') TO ('2026-01-03');
INSERT INTO t2 VALUES ('s', 'k', '2026-01-01 12:00'), ('s', 'k', '2026-01-02 12:00');
--    ... and ON CONFLICT (scope, key) has no arbiter index to use (42P10):
--    ERROR:  there is no unique or exclusion constraint matching the ON CONFLICT specification
INSERT INTO t2 VALUES ('s', 'k', '2026-01-01 13:00') ON CONFLICT (scope, key) DO NOTHING;

-- 3. Partitioning by an expression of the expiry (a day) with PRIMARY KEY (scope, key): refused.
--    ERROR:  unsupported PRIMARY KEY constraint with partition key definition
--    DETAIL: PRIMARY KEY constraints cannot be used when partition keys include expressions.
CREATE TABLE t3 (
  scope varchar(255) NOT NULL, key varchar(255) NOT NULL, expires_at timestamptz NOT NULL,
  PRIMARY KEY (scope, key)
) PARTITION BY RANGE ((date_trunc('day', expires_at AT TIME ZONE 'UTC')));

-- 4. HASH partitioning on the key keeps PRIMARY KEY (scope, key) and ON CONFLICT (scope, key):
--    two attempts leave t4_rows = 1. It splits the table for vacuum, but expired rows are spread
--    over every partition, so the purge stays a DELETE.
CREATE TABLE t4 (
  scope varchar(255) NOT NULL, key varchar(255) NOT NULL, expires_at timestamptz NOT NULL,
  PRIMARY KEY (scope, key)
) PARTITION BY HASH (scope, key);
CREATE TABLE t4_0 PARTITION OF t4 FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE t4_1 PARTITION OF t4 FOR VALUES WITH (MODULUS 2, REMAINDER 1);
INSERT INTO t4 VALUES ('s', 'k', now()) ON CONFLICT (scope, key) DO NOTHING;
INSERT INTO t4 VALUES ('s', 'k', now()) ON CONFLICT (scope, key) DO NOTHING;
SELECT count(*) AS t4_rows FROM t4;

-- The library's table, partitioned by expiry, keeping its primary key: refused.
CREATE TABLE t1 (
  scope varchar(255) NOT NULL, key varchar(255) NOT NULL, expires_at timestamptz NOT NULL,
  CONSTRAINT t1_pkey PRIMARY KEY (scope, key)
) PARTITION BY RANGE (expires_at);
-- Allowed, but only unique per (scope, key, expires_at): two live rows of one key can coexist.
CREATE TABLE t2 (
  scope varchar(255) NOT NULL, key varchar(255) NOT NULL, expires_at timestamptz NOT NULL,
  CONSTRAINT t2_pkey PRIMARY KEY (scope, key, expires_at)
) PARTITION BY RANGE (expires_at);
CREATE TABLE t2_a PARTITION OF t2 FOR VALUES FROM ('2026-01-01') TO ('2026-01-02');
CREATE TABLE t2_b PARTITION OF t2 FOR VALUES FROM ('2026-01-02') TO ('2026-01-03');
INSERT INTO t2 VALUES ('s', 'k', '2026-01-01 12:00'), ('s', 'k', '2026-01-02 12:00');
-- and ON CONFLICT (scope, key) has no arbiter index to use:
INSERT INTO t2 VALUES ('s', 'k', '2026-01-01 13:00') ON CONFLICT (scope, key) DO NOTHING;
-- An expression partition key cannot back a unique constraint either:
CREATE TABLE t3 (
  scope varchar(255) NOT NULL, key varchar(255) NOT NULL, expires_at timestamptz NOT NULL,
  PRIMARY KEY (scope, key)
) PARTITION BY RANGE ((date_trunc('day', expires_at AT TIME ZONE 'UTC')));
-- HASH partitioning on the key keeps PRIMARY KEY (scope, key) and ON CONFLICT (scope, key):
CREATE TABLE t4 (
  scope varchar(255) NOT NULL, key varchar(255) NOT NULL, expires_at timestamptz NOT NULL,
  PRIMARY KEY (scope, key)
) PARTITION BY HASH (scope, key);
CREATE TABLE t4_0 PARTITION OF t4 FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE t4_1 PARTITION OF t4 FOR VALUES WITH (MODULUS 2, REMAINDER 1);
INSERT INTO t4 VALUES ('s', 'k', now()) ON CONFLICT (scope, key) DO NOTHING;
INSERT INTO t4 VALUES ('s', 'k', now()) ON CONFLICT (scope, key) DO NOTHING;
SELECT count(*) AS t4_rows FROM t4;

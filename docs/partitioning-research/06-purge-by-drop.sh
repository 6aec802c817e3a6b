#!/bin/sh
# The purge of a partitioned table, DETACH PARTITION ... CONCURRENTLY then DROP TABLE
# (docs/partitioning.md, "When to move" and "Research results"), in two parts:
#   cost         yesterday's partition holds 500 000 expired rows shaped like the purge bench's;
#                16 pgbench clients claim and complete new keys (per-second progress) while the
#                partition is detached and dropped; the script prints the DDL times and the WAL
#                written meanwhile (the claims' included).
#   interrupted  a DETACH ... CONCURRENTLY cut off by statement_timeout while an older transaction
#                holds the table (as the store's purge gives way): the partition stays pending, a
#                second concurrent detach of the table is refused, claims go on, FINALIZE ends it.
# Recorded (2026-11-28, PostgreSQL 18.4, shared 2-core machine):
#   cost         partition 203 MB; DETACH CONCURRENTLY 37 ms, DROP 122 ms; 0.24 MB of WAL in that
#                interval; no failed transaction and no latency spike in the pgbench progress.
#                (Deleting the same 500 000 rows from the single table: 4-11 s and 234-238 MB of
#                WAL, plus 12-21 MB for the VACUUM; see docs/partitioning.md.)
#   interrupted  cancelled after 1 s, inhdetachpending = t; the second detach failed ("... already
#                pending detach in partitioned table ...", hint: DETACH PARTITION ... FINALIZE); a
#                claim answered claimed; FINALIZE 5 ms, DROP 5 ms.
#
# Run: sh 06-purge-by-drop.sh. PG* environment variables select the server (CHECKPOINT needs a
# superuser or pg_checkpoint); the script drops and recreates database $DB (default
# idempotency_research). Needs psql and pgbench ($PGBENCH, default pgbench).
set -u
cd "$(dirname "$0")"
. ./research-db.sh
yesterday() { # a partition for yesterday, which the purge drops
  $P <<'SQL'
SELECT date_bin('1 day', now(), timestamptz '2000-01-01 00:00+00') AS today \gset
CREATE TABLE idempotency_records_yesterday PARTITION OF idempotency_records
  FOR VALUES FROM (timestamptz :'today' - interval '1 day') TO (:'today');
SQL
}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

echo "=== cost"
fresh || exit 1
yesterday
$P <<'SQL'
-- 500 000 expired records in yesterday's partition, shaped like the purge bench's.
SELECT date_bin('1 day', now(), timestamptz '2000-01-01 00:00+00') AS today \gset
INSERT INTO idempotency_records (scope, key, fingerprint, state, lock_token, response_status,
                                 response_headers, response_body, created_at, completed_at, expires_at)
SELECT 'client-' || (i % 5000), md5('k' || i)::uuid::text, md5(i::text), 'completed', gen_random_uuid(),
       201, '{"content-type":"application/json; charset=utf-8"}', convert_to(repeat('x', 90), 'UTF8'),
       t - interval '24 hours', t - interval '24 hours', t
  FROM generate_series(1, 500000) i,
       LATERAL (SELECT timestamptz :'today' - interval '1 day' + (i / 500000.0) * interval '23 hours' AS t) x;
VACUUM ANALYZE idempotency_records;
CHECKPOINT;
SELECT pg_size_pretty(pg_total_relation_size('idempotency_records_yesterday')) AS partition_size;
SQL
cat > "$T/new-key.sql" <<'SQL'
SELECT gen_random_uuid() AS k, gen_random_uuid() AS t \gset
SELECT coalesce(claimed_expires_at, 'infinity') AS e FROM idempotency_claim('s', :k, 'fp', :t, 60000, 86400000) \gset
SELECT idempotency_complete('s', :k, :t, 201::smallint, '{}', '\x7b7d'::bytea, 86400000, :e);
SQL
${PGBENCH:-pgbench} -n -M prepared -c 16 -j 2 -T 7 -P 1 -f "$T/new-key.sql" "$DB" 2>&1 \
  | grep -E '^progress|tps|failed' &
sleep 3
$P <<'SQL'
SELECT pg_current_wal_insert_lsn() AS lsn \gset
\timing on
ALTER TABLE idempotency_records DETACH PARTITION idempotency_records_yesterday CONCURRENTLY;
DROP TABLE idempotency_records_yesterday;
\timing off
SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), :'lsn') AS wal_bytes_of_the_purge;
SQL
wait

echo "=== interrupted"
fresh || exit 1
yesterday
($P -c "BEGIN" -c "SELECT count(*) FROM idempotency_records" -c "SELECT pg_sleep(3)" -c "COMMIT" > /dev/null) &
sleep 0.5
$P -c "SET statement_timeout = '1s'" \
  -c "ALTER TABLE idempotency_records DETACH PARTITION idempotency_records_yesterday CONCURRENTLY" 2>&1
$P -c "SELECT inhrelid::regclass AS partition, inhdetachpending FROM pg_inherits
        WHERE inhrelid = 'idempotency_records_yesterday'::regclass"
# A concurrent detach of another partition while one is pending:
$P 2>&1 <<'SQL' | head -2
SELECT c.oid::regclass AS other FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent = 'idempotency_records'::regclass AND NOT i.inhdetachpending
 ORDER BY c.relname DESC LIMIT 1 \gset
ALTER TABLE idempotency_records DETACH PARTITION :other CONCURRENTLY;
SQL
$P -c "SELECT outcome FROM idempotency_claim('s', 'during-pending', 'fp', gen_random_uuid(), 60000, 86400000)"
wait
$P -c '\timing on' \
  -c "ALTER TABLE idempotency_records DETACH PARTITION idempotency_records_yesterday FINALIZE" \
  -c "DROP TABLE idempotency_records_yesterday" 2>&1

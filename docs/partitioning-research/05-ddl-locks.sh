#!/bin/sh
# Which partition DDL makes claims wait (docs/partitioning.md, "DDL against claims"): why the store
# creates partitions with CREATE TABLE (LIKE ...) + ATTACH PARTITION and drops them with DETACH
# PARTITION ... CONCURRENTLY + DROP TABLE. A transactional-mode request holds its transaction open
# for 3 s (it claimed a key; its handler runs). 0.5 s in, the DDL starts; 1 s in, a claim of a new
# key is sent. Four kinds of DDL, each on a fresh database:
#   drop                 DROP TABLE of an attached partition (yesterday's)
#   detach-concurrently  DETACH PARTITION ... CONCURRENTLY, then DROP TABLE
#   create-partition-of  CREATE TABLE ... PARTITION OF, for a future range
#   create-then-attach   CREATE TABLE (LIKE ...), then ATTACH PARTITION, for a future range
# Recorded (2026-11-28, PostgreSQL 18.4), DDL time / claim time:
#   drop                 2 487 ms        / 2 013 ms (queued behind the ACCESS EXCLUSIVE request)
#   detach-concurrently  2 527 ms + 9 ms /    24 ms
#   create-partition-of  2 540 ms        / 2 045 ms (ACCESS EXCLUSIVE on the parent as well)
#   create-then-attach   13 ms + 6 ms    /    14 ms (ATTACH takes SHARE UPDATE EXCLUSIVE)
#
# Run: sh 05-ddl-locks.sh. PG* environment variables select the server; the script drops and
# recreates database $DB (default idempotency_research). Needs psql.
set -u
cd "$(dirname "$0")"
. ./research-db.sh
yesterday() { # a partition for yesterday, which the purge would drop
  $P <<'SQL'
SELECT date_bin('1 day', now(), timestamptz '2000-01-01 00:00+00') AS today \gset
CREATE TABLE idempotency_records_yesterday PARTITION OF idempotency_records
  FOR VALUES FROM (timestamptz :'today' - interval '1 day') TO (:'today');
SQL
}
future="FOR VALUES FROM ('2100-01-01') TO ('2100-01-02')"
ddl() { # each statement in its own -c: DETACH ... CONCURRENTLY refuses a transaction block
  case $1 in
  drop)
    $P -c '\timing on' -c "DROP TABLE idempotency_records_yesterday" ;;
  detach-concurrently)
    $P -c '\timing on' \
      -c "ALTER TABLE idempotency_records DETACH PARTITION idempotency_records_yesterday CONCURRENTLY" \
      -c "DROP TABLE idempotency_records_yesterday" ;;
  create-partition-of)
    $P -c '\timing on' -c "CREATE TABLE idempotency_records_future PARTITION OF idempotency_records $future" ;;
  create-then-attach)
    $P -c '\timing on' \
      -c "CREATE TABLE idempotency_records_future (LIKE idempotency_records INCLUDING DEFAULTS)" \
      -c "ALTER TABLE idempotency_records ATTACH PARTITION idempotency_records_future $future" ;;
  esac
}

for kind in drop detach-concurrently create-partition-of create-then-attach; do
  fresh > /dev/null 2>&1 || exit 1
  yesterday
  ($P -c "BEGIN" -c "SELECT outcome FROM idempotency_claim('s', 'tx-key', 'fp', gen_random_uuid(), 60000, 86400000, false)" \
      -c "SELECT pg_sleep(3)" -c "COMMIT" > /dev/null) &
  sleep 0.5
  (ddl $kind 2>&1 | grep -E 'Time|ERROR' | sed "s/^/  DDL statement: /") &
  sleep 0.5
  $P -c '\timing on' -c "SELECT outcome FROM idempotency_claim('s', 'new-key', 'fp', gen_random_uuid(), 60000, 86400000)" \
    | grep Time | sed 's/^/  claim of a new key, sent 1 s in: /'
  wait
  echo "--- $kind"
done

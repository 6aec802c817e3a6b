#!/bin/sh
# Why the per-key lock is taken in a statement of its own, before the statements that read and
# write the key (docs/partitioning.md, "How it keeps one execution per key"). 16 pgbench clients
# for 8 s all claim the same new key in each 20 ms slot of the clock, on the partitioned table of
# schema.sql, in two ways, and the script counts the keys left with two or more live rows:
#   cte            the lock taken in a MATERIALIZED CTE of the claim statement (as the single
#                  table's transactional claim does). The statement's READ COMMITTED snapshot is
#                  taken before the lock is granted, so a claim that waited for the lock does not
#                  see the row its holder inserted, and inserts a second one.
#   own-statement  idempotency_claim() of schema.sql: the lock in a statement of its own, then the
#                  read in the next one, under a snapshot taken after the lock.
# Recorded (2026-11-28, PostgreSQL 18.4, shared 2-core machine): cte, 381 of 383 keys with two or
# more live rows (2 878 extra rows); own-statement, 383 keys and 0 duplicates. The pgbench scripts
# below are those of the recorded runs; this driver, written afterwards from their settings, gave
# the same on PostgreSQL 15 (2026-12-06): cte 389 of 391 keys, own-statement 0 of 390.
#
# Run: sh 02-lock-in-own-statement.sh. PG* environment variables select the server; the script
# drops and recreates database $DB (default idempotency_research). Needs psql and pgbench
# ($PGBENCH, default pgbench).
set -u
cd "$(dirname "$0")"
. ./research-db.sh
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

cat > "$T/cte.sql" <<'SQL'
SELECT (extract(epoch FROM clock_timestamp()) * 50)::bigint AS k \gset
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
SQL
cat > "$T/own-statement.sql" <<'SQL'
SELECT (extract(epoch FROM clock_timestamp()) * 50)::bigint AS k \gset
SELECT outcome FROM idempotency_claim('s', ':k', 'fp', gen_random_uuid(), 60000, 86400000);
SQL

for variant in cte own-statement; do
  fresh || exit 1
  # The simple protocol (no -M prepared): the key is substituted into a quoted literal.
  ${PGBENCH:-pgbench} -n -c 16 -j 2 -T 8 -f "$T/$variant.sql" "$DB" 2>&1 | grep -E 'processed|failed|tps'
  $P -c "SELECT count(*) AS keys, count(*) FILTER (WHERE n > 1) AS keys_with_two_live_rows,
                coalesce(sum(n - 1), 0) AS extra_rows
           FROM (SELECT count(*) AS n FROM idempotency_records WHERE expires_at > now()
                  GROUP BY scope, key) c"
  echo "--- $variant"
done

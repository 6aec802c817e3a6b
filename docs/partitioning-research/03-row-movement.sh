#!/bin/sh
# Why every writer of a key (complete, mark, release too, not only the claim) takes the key's lock
# first (docs/partitioning.md, "Why the obvious designs fail": row movement). A takes key 'k-move'
# over (its lease ran out): its UPDATE of expires_at moves the row to the next day's partition, and
# A holds the key's lock for 2 s. Meanwhile B completes the old claim, in three ways:
#   plain     an UPDATE by key and token
#   cte       the same UPDATE with the lock taken in a MATERIALIZED CTE
#   function  idempotency_complete() of schema.sql: the lock in a statement of its own, then the
#             UPDATE
# Recorded (2026-11-28, PostgreSQL 18.4): plain and cte both fail with
#   ERROR: 40001: tuple to be locked was already moved to another partition due to concurrent update
# (on an unpartitioned table READ COMMITTED re-checks the new row version instead); function
# returns false: B waited for the lock, then found its claim taken over, which is the right answer.
#
# Run: sh 03-row-movement.sh. PG* environment variables select the server; the script drops and
# recreates database $DB (default idempotency_research). Needs psql.
set -u
cd "$(dirname "$0")"
. ./research-db.sh
setup() {
  $P -c "DELETE FROM idempotency_records WHERE key = 'k-move'" -c "
    INSERT INTO idempotency_records (scope, key, fingerprint, state, lock_token, locked_until, expires_at)
    VALUES ('s', 'k-move', 'fp', 'in_flight', '00000000-0000-0000-0000-000000000001',
            now() - interval '1 s', date_trunc('day', now()) + interval '1 day 12 hours')"
}
mover() {
  $P -c "BEGIN" -c "SELECT pg_advisory_xact_lock(idempotency_key_lock('s', 'k-move'))" -c "
    UPDATE idempotency_records SET lock_token = gen_random_uuid(), expires_at = expires_at + interval '1 day'
     WHERE key = 'k-move'" -c "SELECT pg_sleep(2)" -c "COMMIT" > /dev/null
}
complete_plain="UPDATE idempotency_records SET state = 'completed'
  WHERE scope = 's' AND key = 'k-move' AND lock_token = '00000000-0000-0000-0000-000000000001'"
complete_cte="WITH lock AS MATERIALIZED (SELECT pg_advisory_xact_lock(idempotency_key_lock('s', 'k-move')) AS got)
  UPDATE idempotency_records SET state = 'completed'
  WHERE (SELECT true FROM lock) AND scope = 's' AND key = 'k-move'
    AND lock_token = '00000000-0000-0000-0000-000000000001'"
complete_function="SELECT idempotency_complete('s', 'k-move', '00000000-0000-0000-0000-000000000001',
  201::smallint, '{}', '\x7b7d', 86400000, date_trunc('day', now()) + interval '1 day 12 hours') AS completed"

fresh || exit 1
for case in plain cte function; do
  setup
  mover &
  sleep 0.5
  eval "sql=\$complete_$case"
  echo "--- complete, $case:"
  $P -c "$sql" 2>&1
  wait
done

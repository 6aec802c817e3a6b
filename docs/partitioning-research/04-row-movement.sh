#!/bin/sh
# A takes key 'k-move' over (its lease ran out) and moves the row to the next day's partition,
# holding the key's lock for 2 s; B completes the old claim meanwhile, in three ways.
export PGPASSWORD=dev
P="psql -h 127.0.0.1 -p 55432 -U postgres -X -q -d research"
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
for case in plain cte function; do
  setup
  mover &
  sleep 0.5
  eval "sql=\$complete_$case"
  echo "--- complete, $case:"
  $P -c "$sql" 2>&1
  wait
done

#!/bin/sh
# The library's table: a purge batch (held open 2 s here, as a long batch would be) holds the row of
# an expired key; a client claims that key again meanwhile.
export PGPASSWORD=dev
P="psql -h 127.0.0.1 -p 55432 -U postgres -X -q -d lib"
cd /tmp/partition-research
$P -c "INSERT INTO idempotency_records (scope, key, fingerprint, state, lock_token, expires_at)
       VALUES ('s', 'expired-key', 'old', 'completed', gen_random_uuid(), now() - interval '1 minute')
       ON CONFLICT DO NOTHING"
($P -c "BEGIN" -f lib-purge.sql -c "SELECT pg_sleep(2)" -c "COMMIT" > /dev/null) &
sleep 0.5
$P -f lib-claim-expired.sql | grep -E 'Time|claimed' &
sleep 0.5
$P -c "SELECT wait_event_type, wait_event, left(query, 30) AS query FROM pg_stat_activity
        WHERE datname = 'lib' AND wait_event_type = 'Lock'"
wait

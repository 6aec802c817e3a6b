#!/bin/sh
# Does partition DDL make claims wait? A transactional-mode request holds its transaction open for
# 3 s (it claimed a key; its handler runs); 0.5 s in, the DDL starts; 1 s in, a new key is claimed.
export PGPASSWORD=dev
P="psql -h 127.0.0.1 -p 55432 -U postgres -X -q -d research"
cd /tmp/partition-research
for ddl in ddl-drop ddl-detach-concurrently ddl-create-partition-of ddl-create-then-attach; do
  ./fresh.sh > /dev/null 2>&1
  $P -f yesterday.sql
  ($P -c "BEGIN" -c "SELECT outcome FROM idempotency_claim('s', 'tx-key', 'fp', gen_random_uuid(), 60000, 86400000, false)" \
      -c "SELECT pg_sleep(3)" -c "COMMIT" > /dev/null) &
  sleep 0.5
  ($P -f $ddl.sql 2>&1 | grep -E 'Time|ERROR' | sed "s/^/  DDL statement: /") &
  sleep 0.5
  $P -c '\timing on' -c "SELECT outcome FROM idempotency_claim('s', 'new-key', 'fp', gen_random_uuid(), 60000, 86400000)" \
    | grep Time | sed 's/^/  claim of a new key, sent 1 s in: /'
  wait
  echo "--- $ddl"
done

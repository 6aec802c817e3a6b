#!/bin/sh
export PGPASSWORD=dev
P="psql -h 127.0.0.1 -p 55432 -U postgres -X -q -d research"
cd /tmp/partition-research
for script in stress-takeover-function stress-takeover-unlocked-complete; do
  ./fresh.sh '30 minutes' '1 minute' > /dev/null 2>&1
  /usr/lib/postgresql/15/bin/pgbench -h 127.0.0.1 -p 55432 -U postgres -n -M prepared -c 16 -j 2 -T 10 \
    --failures-detailed -f $script.sql research 2>&1 | grep -E 'processed|failed|serialization|tps'
  $P -f duplicates.sql
  $P -c "SELECT count(*) FILTER (WHERE state = 'completed') AS completed, count(*) FILTER (WHERE state = 'in_flight') AS in_flight, count(DISTINCT tableoid) AS partitions_used FROM idempotency_records"
  echo "--- $script"
done

#!/bin/sh
# The partitioned purge: DETACH CONCURRENTLY + DROP of yesterday's partition holding 500 000 expired
# rows, while 16 clients claim and complete new keys (pgbench, per-second progress).
export PGPASSWORD=dev
P="psql -h 127.0.0.1 -p 55432 -U postgres -X -q -d research"
cd /tmp/partition-research
./fresh.sh > /dev/null 2>&1
$P -f yesterday.sql
$P -f fill-yesterday.sql
/usr/lib/postgresql/15/bin/pgbench -h 127.0.0.1 -p 55432 -U postgres -n -M prepared -c 16 -j 2 -T 7 -P 1 \
  -f new-function.sql research 2>&1 | grep -E '^progress|tps' &
sleep 3
$P -f purge-by-drop.sql
wait

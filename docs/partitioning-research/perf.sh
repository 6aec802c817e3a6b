#!/bin/sh
# Claims of new keys (claim + complete) and replays of 10 000 finished keys, 16 clients, prepared
# statements: the library's statements on its table (lib) vs the partitioned design's functions
# with 4 daily partitions (research) and 49 hourly ones (research_h). $1 rounds of $2 s, interleaved.
export PGPASSWORD=dev
P="psql -h 127.0.0.1 -p 55432 -U postgres -X -q"
B="/usr/lib/postgresql/15/bin/pgbench -h 127.0.0.1 -p 55432 -U postgres -n -M prepared -c 16 -j 2 -T $2"
cd /tmp/partition-research
./fresh.sh > /dev/null 2>&1
DB=research_h ./fresh.sh '2 days' '1 hour' | sed -n 3p
$P -c "DROP DATABASE IF EXISTS lib WITH (FORCE)" -c "CREATE DATABASE lib" 2>/dev/null
$P -d lib -f /tmp/pgdev/ddl.sql
for db in lib research research_h; do $P -d $db -f replay-keys.sql; done
for round in $(seq 1 $1); do
  for case in new-library:lib new-function:research new-function:research_h \
              replay-library:lib replay-function:research replay-function:research_h; do
    script=${case%%:*}; db=${case##*:}
    echo "$round $script $db $($B -f $script.sql $db 2>&1 | grep -E '^(tps|latency average)' | tr '\n' ' ')"
  done
done

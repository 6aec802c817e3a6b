#!/bin/sh
# A DETACH ... CONCURRENTLY cancelled while it waits for an old transaction (statement_timeout of
# the purge job's connection) leaves the partition "detach pending"; FINALIZE completes it.
export PGPASSWORD=dev
P="psql -h 127.0.0.1 -p 55432 -U postgres -X -q -d research"
cd /tmp/partition-research
./fresh.sh > /dev/null 2>&1
$P -f yesterday.sql
($P -c "BEGIN" -c "SELECT count(*) FROM idempotency_records" -c "SELECT pg_sleep(3)" -c "COMMIT" > /dev/null) &
sleep 0.5
$P -c "SET statement_timeout = '1s'" \
   -c "ALTER TABLE idempotency_records DETACH PARTITION idempotency_records_yesterday CONCURRENTLY" 2>&1
$P -c "SELECT inhrelid::regclass AS partition, inhdetachpending FROM pg_inherits WHERE inhrelid = 'idempotency_records_yesterday'::regclass"
$P -f detach-second.sql 2>&1 | head -2
$P -c "SELECT outcome FROM idempotency_claim('s', 'during-pending', 'fp', gen_random_uuid(), 60000, 86400000)"
wait
$P -c '\timing on' -c "ALTER TABLE idempotency_records DETACH PARTITION idempotency_records_yesterday FINALIZE" -c "DROP TABLE idempotency_records_yesterday" 2>&1

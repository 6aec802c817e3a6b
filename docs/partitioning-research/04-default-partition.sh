#!/bin/sh
# Why the store refuses a table with a DEFAULT partition (docs/partitioning.md, "Why the obvious
# designs fail"). A claim with a 30-day TTL, past the partitions created 3 days ahead, without and
# then with a DEFAULT partition; then what the DEFAULT partition does to the partition upkeep.
# Recorded (2026-11-28, PostgreSQL 18.4):
#   no DEFAULT partition   the claim fails: ERROR: no partition of relation "idempotency_records"
#                          found for row (the store answers 503: safe, but an outage for the route)
#   with one               the row lands in it
#   then creating the partition for its range fails: ERROR: updated partition constraint for
#                          default partition "idempotency_records_default" would be violated by
#                          some row
#   then the purge fails:  ERROR: cannot detach partitions concurrently when a default partition
#                          exists
#
# Run: sh 04-default-partition.sh. PG* environment variables select the server; the script drops
# and recreates database $DB (default idempotency_research). Needs psql.
set -u
cd "$(dirname "$0")"
. ./research-db.sh

fresh || exit 1
$P <<'SQL'
\set VERBOSITY terse
-- A partition for yesterday, which the purge would detach.
SELECT date_bin('1 day', now(), timestamptz '2000-01-01 00:00+00') AS today \gset
CREATE TABLE idempotency_records_yesterday PARTITION OF idempotency_records
  FOR VALUES FROM (timestamptz :'today' - interval '1 day') TO (:'today');
-- Without a default partition, a row beyond the partitions created ahead fails its INSERT:
SELECT outcome FROM idempotency_claim('s', 'long-ttl', 'fp', gen_random_uuid(), 60000, 30 * 86400000::float8);
-- With one, the row lands there ...
CREATE TABLE idempotency_records_default PARTITION OF idempotency_records DEFAULT;
SELECT outcome FROM idempotency_claim('s', 'long-ttl', 'fp', gen_random_uuid(), 60000, 30 * 86400000::float8);
-- ... a partition for its range can no longer be added ...
SELECT idempotency_create_partitions('32 days');
-- ... and the purge may not detach concurrently:
ALTER TABLE idempotency_records DETACH PARTITION idempotency_records_yesterday CONCURRENTLY;
SQL

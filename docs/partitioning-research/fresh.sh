#!/bin/sh
# Recreates database $DB (default research) with the partitioned design, and partitions of width $2
# (default 1 day) from the current one up to now() + $1 (default 3 days).
export PGPASSWORD=dev
DB=${DB:-research}
P="psql -h 127.0.0.1 -p 55432 -U postgres -X -q"
$P -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
$P -d $DB -v ON_ERROR_STOP=1 -f /tmp/partition-research/02-partitioned-schema.sql
$P -d $DB -c "SELECT idempotency_create_partitions('${1:-3 days}', '${2:-1 day}') AS partitions_created"

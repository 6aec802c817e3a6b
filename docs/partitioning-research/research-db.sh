# Sourced by the scripts here: the research database ($DB, default idempotency_research) on the
# server the PG* environment variables select, `$P` to run psql in it, and `fresh` to drop and
# recreate it with schema.sql and daily partitions from today to three days ahead.
DB=${DB:-idempotency_research}
P="psql -X -q -d $DB"
fresh() {
  psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" &&
    $P -v ON_ERROR_STOP=1 -f schema.sql -c "SELECT idempotency_create_partitions('3 days')" > /dev/null
}

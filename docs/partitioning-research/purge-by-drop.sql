SELECT pg_current_wal_insert_lsn() AS lsn \gset
\timing on
ALTER TABLE idempotency_records DETACH PARTITION idempotency_records_yesterday CONCURRENTLY;
DROP TABLE idempotency_records_yesterday;
\timing off
SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), :'lsn') AS wal_bytes_of_the_purge;

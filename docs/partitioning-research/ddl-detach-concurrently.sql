\timing on
ALTER TABLE idempotency_records DETACH PARTITION idempotency_records_yesterday CONCURRENTLY;
DROP TABLE idempotency_records_yesterday;

\timing on
DROP TABLE idempotency_records_yesterday;

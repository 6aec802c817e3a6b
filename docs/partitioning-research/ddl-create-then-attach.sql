\timing on
CREATE TABLE idempotency_records_future (LIKE idempotency_records INCLUDING DEFAULTS);
ALTER TABLE idempotency_records ATTACH PARTITION idempotency_records_future
  FOR VALUES FROM ('2100-01-01') TO ('2100-01-02');

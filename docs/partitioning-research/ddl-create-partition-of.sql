\timing on
CREATE TABLE idempotency_records_future PARTITION OF idempotency_records
  FOR VALUES FROM ('2100-01-01') TO ('2100-01-02');

SELECT date_bin('1 day', now(), timestamptz '2000-01-01 00:00+00') AS today \gset
CREATE TABLE idempotency_records_yesterday PARTITION OF idempotency_records
  FOR VALUES FROM (timestamptz :'today' - interval '1 day') TO (:'today');

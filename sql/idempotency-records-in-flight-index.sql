CREATE INDEX CONCURRENTLY IF NOT EXISTS idempotency_records_in_flight_idx ON idempotency_records (created_at) WHERE state = 'in_flight';


CREATE TABLE IF NOT EXISTS idempotency_records (
  scope            varchar(255) NOT NULL,
  key              varchar(255) NOT NULL,
  fingerprint      varchar(64),
  state            varchar(16)  NOT NULL,
  lock_token       uuid         NOT NULL,
  locked_until     timestamptz,
  response_status  smallint,
  response_headers text,
  response_body    bytea,
  created_at       timestamptz  NOT NULL DEFAULT now(),
  completed_at     timestamptz,
  expires_at       timestamptz  NOT NULL,
  steps            jsonb,
  CONSTRAINT idempotency_records_pkey PRIMARY KEY (scope, key)
);
CREATE INDEX IF NOT EXISTS idempotency_records_expires_at_idx ON idempotency_records (expires_at);

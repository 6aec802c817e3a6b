import type { MigrationInterface, QueryRunner } from 'typeorm';
import { IDEMPOTENCY_TABLE } from './idempotency-record.entity';

/**
 * The idempotency table as plain SQL. An ordinary logged table: the stored responses must survive
 * a crash of PostgreSQL, or retries after it would run again.
 */
export const CREATE_IDEMPOTENCY_TABLE_SQL = `
CREATE TABLE IF NOT EXISTS ${IDEMPOTENCY_TABLE} (
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
  CONSTRAINT idempotency_records_pkey PRIMARY KEY (scope, key)
);
CREATE INDEX IF NOT EXISTS idempotency_records_expires_at_idx ON ${IDEMPOTENCY_TABLE} (expires_at);
`;

/**
 * TypeORM migration that creates the idempotency table. Add it to your DataSource's `migrations`
 * (it runs once, like your own), or copy `CREATE_IDEMPOTENCY_TABLE_SQL` into your tooling.
 */
export class CreateIdempotencyRecords1764201600000 implements MigrationInterface {
  name = 'CreateIdempotencyRecords1764201600000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(CREATE_IDEMPOTENCY_TABLE_SQL);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE IF EXISTS ${IDEMPOTENCY_TABLE}`);
  }
}

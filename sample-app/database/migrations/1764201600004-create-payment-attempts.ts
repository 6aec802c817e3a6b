import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * One row per execution of the payments handler: when it started and when it finished, on the
 * database clock. The reliability suite reads it to count executions per key and to check that no
 * two executions of one key overlap in time. A row without `finished_at` is an execution that
 * never ended (its process died).
 */
export class CreatePaymentAttempts1764201600004 implements MigrationInterface {
  name = 'CreatePaymentAttempts1764201600004';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE payment_attempts (
        id              bigserial    PRIMARY KEY,
        client_id       varchar(255) NOT NULL,
        idempotency_key text,
        pid             integer      NOT NULL,
        started_at      timestamptz  NOT NULL DEFAULT clock_timestamp(),
        finished_at     timestamptz
      )`);
    await queryRunner.query(
      'CREATE INDEX payment_attempts_key_idx ON payment_attempts (client_id, idempotency_key)',
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP TABLE payment_attempts');
  }
}

import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The provider's charges. `idempotency_key` is unique: the idempotency module replays a finished
 * answer, but a provider that died after committing a charge and before its answer was stored
 * runs the request again once its lease ends, and must find the charge instead of making another.
 */
export class CreateCharges1764201600101 implements MigrationInterface {
  name = 'CreateCharges1764201600101';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE charges (
        id              uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
        idempotency_key varchar(255) NOT NULL UNIQUE,
        amount          integer      NOT NULL CHECK (amount > 0),
        currency        char(3)      NOT NULL,
        card            varchar(64)  NOT NULL,
        reference       varchar(255) NOT NULL,
        created_at      timestamptz  NOT NULL DEFAULT now()
      )`);
    await queryRunner.query('CREATE INDEX charges_reference_idx ON charges (reference)');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP TABLE charges');
  }
}

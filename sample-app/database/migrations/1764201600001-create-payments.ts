import type { MigrationInterface, QueryRunner } from 'typeorm';

export class CreatePayments1764201600001 implements MigrationInterface {
  name = 'CreatePayments1764201600001';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE payments (
        id         uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
        client_id  varchar(255) NOT NULL,
        amount     integer      NOT NULL CHECK (amount > 0),
        currency   char(3)      NOT NULL,
        reference  varchar(255),
        status     varchar(16)  NOT NULL,
        created_at timestamptz  NOT NULL DEFAULT now()
      )`);
    await queryRunner.query(
      'CREATE INDEX payments_client_reference_idx ON payments (client_id, reference)',
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP TABLE payments');
  }
}

import type { MigrationInterface, QueryRunner } from 'typeorm';

export class CreateAccountsAndTransfers1764201600003 implements MigrationInterface {
  name = 'CreateAccountsAndTransfers1764201600003';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE accounts (
        id      uuid    PRIMARY KEY DEFAULT gen_random_uuid(),
        balance integer NOT NULL,
        CONSTRAINT accounts_balance_not_negative CHECK (balance >= 0)
      )`);
    await queryRunner.query(`
      CREATE TABLE transfers (
        id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
        from_account uuid        NOT NULL REFERENCES accounts (id),
        to_account   uuid        NOT NULL REFERENCES accounts (id),
        amount       integer     NOT NULL CHECK (amount > 0),
        created_at   timestamptz NOT NULL DEFAULT now()
      )`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP TABLE transfers');
    await queryRunner.query('DROP TABLE accounts');
  }
}

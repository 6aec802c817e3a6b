import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The bench's one business table. No index on `key` on purpose: a unique index would turn a
 * duplicate execution into an error instead of a row that the exactly-once check can count.
 */
export class CreateBenchOrders1764201700000 implements MigrationInterface {
  name = 'CreateBenchOrders1764201700000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE IF NOT EXISTS bench_orders (
        id         bigserial    PRIMARY KEY,
        key        varchar(255),
        payload    text         NOT NULL,
        created_at timestamptz  NOT NULL DEFAULT now()
      )`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP TABLE IF EXISTS bench_orders');
  }
}

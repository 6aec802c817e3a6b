import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The tables of `POST /orders`: stock, its reservations (one per order, the order's id), and
 * shipments (one per order). The steps that write them commit with their recovery points, so
 * none runs twice; `reserve_key` (the reserve step's key) and `shipments.order_id` are unique all
 * the same, so that the data itself says "once".
 */
export class CreateStockAndShipments1764201600010 implements MigrationInterface {
  name = 'CreateStockAndShipments1764201600010';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE stock_items (
        sku        varchar(64) PRIMARY KEY,
        unit_price integer     NOT NULL CHECK (unit_price > 0),
        currency   char(3)     NOT NULL,
        available  integer     NOT NULL CHECK (available >= 0)
      )`);
    await queryRunner.query(`
      CREATE TABLE stock_reservations (
        id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
        reserve_key varchar(64) NOT NULL UNIQUE,
        sku         varchar(64) NOT NULL REFERENCES stock_items (sku),
        quantity    integer     NOT NULL CHECK (quantity > 0),
        amount      integer     NOT NULL CHECK (amount > 0),
        currency    char(3)     NOT NULL,
        released_at timestamptz,
        created_at  timestamptz NOT NULL DEFAULT now()
      )`);
    await queryRunner.query(`
      CREATE TABLE shipments (
        id         uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
        order_id   uuid         NOT NULL UNIQUE REFERENCES stock_reservations (id),
        charge_id  varchar(255) NOT NULL,
        created_at timestamptz  NOT NULL DEFAULT now()
      )`);
    // Something to order with nothing set up: `npm start`, then POST /orders.
    await queryRunner.query(`
      INSERT INTO stock_items (sku, unit_price, currency, available)
      VALUES ('widget', 1500, 'EUR', 1000), ('gadget', 4200, 'EUR', 100)`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP TABLE shipments');
    await queryRunner.query('DROP TABLE stock_reservations');
    await queryRunner.query('DROP TABLE stock_items');
  }
}

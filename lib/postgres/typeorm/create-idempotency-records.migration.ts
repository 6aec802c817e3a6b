import type { MigrationInterface, QueryRunner } from 'typeorm';
import { CREATE_IDEMPOTENCY_TABLE_SQL } from '../schema/idempotency-table.sql';
import { IDEMPOTENCY_TABLE } from '../sql/table-name';

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

import type { MigrationInterface, QueryRunner } from 'typeorm';
import { addRecoveryPointsColumnSql } from '../schema/idempotency-table.sql';
import { IDEMPOTENCY_TABLE } from '../sql/table-name';

/**
 * TypeORM migration that adds the `steps` column, where recovery points are kept (the module's
 * `steps` option), to an idempotency table created before it had one. Add it to your DataSource's
 * `migrations` after `CreateIdempotencyRecords1764201600000`; on a table that has the column it
 * changes nothing.
 */
export class AddIdempotencyRecoveryPoints1796601600000 implements MigrationInterface {
  name = 'AddIdempotencyRecoveryPoints1796601600000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(addRecoveryPointsColumnSql());
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE ${IDEMPOTENCY_TABLE} DROP COLUMN IF EXISTS steps`);
  }
}

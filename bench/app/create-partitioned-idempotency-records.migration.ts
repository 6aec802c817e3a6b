import type { MigrationInterface, QueryRunner } from 'typeorm';
import { createPartitionedIdempotencyTableSql } from '../../lib/postgres';
import { PARTITIONED_IDEMPOTENCY_TABLE } from './bench-app.config';

/**
 * The partitioned app's idempotency table, with the library's DDL as a user would create it. It
 * has no partitions: the store creates them when the app starts.
 */
export class CreatePartitionedIdempotencyRecords1764201800000 implements MigrationInterface {
  name = 'CreatePartitionedIdempotencyRecords1764201800000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(createPartitionedIdempotencyTableSql(PARTITIONED_IDEMPOTENCY_TABLE));
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE IF EXISTS ${PARTITIONED_IDEMPOTENCY_TABLE}`);
  }
}

import { addStepsColumn, createPartitionedIdempotencyTableSql } from './idempotency-table.sql';
import { IDEMPOTENCY_TABLE, assertTableName } from '../sql/table-name';

/**
 * How long the migration's exclusive locks may wait (for transactions using the table) before the
 * statement gives up; each waiting moment queues every claim behind it.
 */
const LOCK_TIMEOUT = '5s';

/** PostgreSQL's 63-character names, less the longest suffix given here ("_before_partitioning"). */
const MAX_NAME_LENGTH = 43;

/** The statements that turn an ordinary idempotency table into a partitioned one in place. */
export interface PartitionedMigrationSql {
  /**
   * Run first, one at a time and outside any transaction (one builds an index CONCURRENTLY),
   * while the application keeps serving from the ordinary table. Safe to run again; if the index
   * build failed, its INVALID index must be dropped (DROP INDEX CONCURRENTLY) first. A statement
   * that times out on its lock (lock_timeout, 5 s) rolls back and can be run again.
   */
  prepare: string[];
  /**
   * Then, as one statement (it holds its own BEGIN and COMMIT; after a failure, such as its lock
   * timing out, send ROLLBACK and run it again): the switch, a few milliseconds whatever the
   * table's size. From its commit on, instances still on the ordinary layout answer
   * `503` to new claims (nothing runs twice), while their requests in flight complete normally;
   * restart them with `tableName` set to `partitionedTable` and `partitioning` set.
   */
  switch: string;
  /**
   * The partitioned table, `<tableName>_partitioned`. The old table keeps its name: instances
   * still on the ordinary layout go on reaching it alone, never the partitioned table, whose
   * partitions their row-by-row purge could not tell apart (a row's ctid is unique only within
   * one partition).
   */
  partitionedTable: string;
}

/**
 * Moves the keys of an ordinary idempotency table into a table partitioned by expiry without
 * copying a row: the old table becomes the partition of every expiry before `boundary` of a new
 * table, `<tableName>_partitioned`, and is dropped by the purge once `boundary` has passed.
 * Partitions after it are created by the store.
 *
 * `boundary` must lie beyond the expiry of every key the ordinary layout writes until the switch:
 * the time of the switch plus the largest `ttlMs` + `lockTimeoutMs`, with a margin. Until the
 * switch, the old table refuses rows that expire later (a claim that would write one answers
 * `503`). A partition boundary of the new layout (a UTC midnight for daily partitions) keeps the
 * partition names aligned.
 *
 * @param tableName the ordinary table. Default: `idempotency_records`.
 */
export function partitionedMigrationSql(
  boundary: Date,
  tableName: string = IDEMPOTENCY_TABLE,
): PartitionedMigrationSql {
  assertTableName(tableName);
  if (Number.isNaN(boundary.getTime())) {
    throw new Error('nestjs-idempotency: the migration boundary is not a valid date.');
  }
  const [schema, name] = tableName.includes('.') ? tableName.split('.') : [null, tableName];
  if (name.length > MAX_NAME_LENGTH) {
    throw new Error(
      `nestjs-idempotency: the migration names its objects after the table, whose name must then have at most ${MAX_NAME_LENGTH} characters.`,
    );
  }
  const qualified = (table: string) => (schema ? `${schema}.${table}` : table);
  const next = qualified(`${name}_partitioned`);
  const keyIndex = `${name}_key_expiry_idx`;
  const check = `${name}_before_partitioning`;
  const at = boundary.toISOString();
  return {
    prepare: [
      // The primary key the partition will need, built without blocking writes.
      `CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS ${keyIndex} ON ${tableName} (scope, key, expires_at)`,
      // Proven before the switch, so attaching the table does not scan it under lock. Adding it
      // takes a brief exclusive lock: behind a long transaction it gives up instead of queueing
      // every claim.
      // No BEGIN: the statements of one query string share an implicit transaction, which rolls
      // itself back on a timeout and leaves the connection usable for a retry.
      // The partitioned table has every column, and a table made before recovery points lacks
      // their column: ATTACH needs the same columns.
      `SELECT set_config('lock_timeout', '${LOCK_TIMEOUT}', true);
${addStepsColumn(tableName)};
ALTER TABLE ${tableName} DROP CONSTRAINT IF EXISTS ${check};
ALTER TABLE ${tableName} ADD CONSTRAINT ${check} CHECK (expires_at < '${at}') NOT VALID;`,
      `ALTER TABLE ${tableName} VALIDATE CONSTRAINT ${check}`,
    ],
    // The partitioned table is created here, not in prepare: an instance started with the new
    // settings before the switch must find no table (and refuse to start), not an empty one whose
    // claims would ignore the keys of the ordinary table.
    switch: `
BEGIN;
SET LOCAL lock_timeout = '${LOCK_TIMEOUT}';
${createPartitionedIdempotencyTableSql(next).trim().replace('CREATE TABLE IF NOT EXISTS', 'CREATE TABLE')}
DO $$ BEGIN
  -- Without the validated CHECK, ATTACH would scan the whole table under an exclusive lock.
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = '${tableName}'::regclass
                    AND conname = '${check}' AND convalidated) THEN
    RAISE EXCEPTION 'nestjs-idempotency: run the migration''s prepare statements first (no validated ${check}).';
  END IF;
  -- Whatever created the table named its primary key (TypeORM's synchronize names it PK_...).
  EXECUTE format('ALTER TABLE ${tableName} DROP CONSTRAINT %I', (
    SELECT conname FROM pg_constraint WHERE conrelid = '${tableName}'::regclass AND contype = 'p'));
END $$;
ALTER TABLE ${tableName} ADD CONSTRAINT ${name}_pkey PRIMARY KEY USING INDEX ${keyIndex};
ALTER TABLE ${next} ATTACH PARTITION ${tableName} FOR VALUES FROM (MINVALUE) TO ('${at}');
COMMIT;
`,
    partitionedTable: next,
  };
}

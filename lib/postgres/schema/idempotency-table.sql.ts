import { IDEMPOTENCY_TABLE, assertTableName } from '../sql/table-name';

/**
 * The idempotency table as plain SQL, for `tableName` (default `idempotency_records`). An ordinary
 * logged table: the stored responses must survive a crash of PostgreSQL, or retries after it would
 * run again.
 */
export function createIdempotencyTableSql(tableName: string = IDEMPOTENCY_TABLE): string {
  assertTableName(tableName);
  const index = `${tableName.split('.').pop()}_expires_at_idx`;
  return `
CREATE TABLE IF NOT EXISTS ${tableName} (${columns(tableName, 'scope, key')}
);
CREATE INDEX IF NOT EXISTS ${index} ON ${tableName} (expires_at);
`;
}

/**
 * The idempotency table partitioned by expiry, as plain SQL, for the store's `partitioning`
 * option (PostgreSQL 14 or later). Its primary key must include the partition key, so it cannot
 * keep a key unique by itself: the store keeps one live row per key with a per-key lock, and
 * creates and drops the partitions. No partition is created here, and none should be added by
 * hand as DEFAULT (it would stop partitions from being created or detached).
 */
export function createPartitionedIdempotencyTableSql(
  tableName: string = IDEMPOTENCY_TABLE,
): string {
  assertTableName(tableName);
  return `
CREATE TABLE IF NOT EXISTS ${tableName} (${columns(tableName, 'scope, key, expires_at')}
) PARTITION BY RANGE (expires_at);
`;
}

function columns(tableName: string, primaryKey: string): string {
  return `
  scope            varchar(255) NOT NULL,
  key              varchar(255) NOT NULL,
  fingerprint      varchar(64),
  state            varchar(16)  NOT NULL,
  lock_token       uuid         NOT NULL,
  locked_until     timestamptz,
  response_status  smallint,
  response_headers text,
  response_body    bytea,
  created_at       timestamptz  NOT NULL DEFAULT now(),
  completed_at     timestamptz,
  expires_at       timestamptz  NOT NULL,
  steps            jsonb,
  CONSTRAINT ${tableName.split('.').pop()}_pkey PRIMARY KEY (${primaryKey})`;
}

/**
 * Adds the `steps` column, where recovery points are kept (the module's `steps` option), to an
 * idempotency table made before it had one, as plain SQL; for either layout (the partitions of a
 * partitioned table get it too). Without a default value it changes only the catalog: quick,
 * whatever the table's size, once it has its brief exclusive lock. Behind a long transaction it
 * gives up after 5 s (`lock_timeout`) instead of queueing every claim: run it again then. Safe to
 * run again. Two statements, for one implicit transaction (send them as one query, without
 * parameters) or a migration's transaction.
 */
export function addRecoveryPointsColumnSql(tableName: string = IDEMPOTENCY_TABLE): string {
  return `SELECT set_config('lock_timeout', '5s', true);\n${addStepsColumn(tableName)};\n`;
}

/** The ALTER TABLE of `addRecoveryPointsColumnSql`, alone. */
export function addStepsColumn(tableName: string): string {
  assertTableName(tableName);
  return `ALTER TABLE ${tableName} ADD COLUMN IF NOT EXISTS steps jsonb`;
}

/** The default table as plain SQL (see createIdempotencyTableSql). */
export const CREATE_IDEMPOTENCY_TABLE_SQL = createIdempotencyTableSql();

import type { Pool } from 'pg';

/** What the store needs to know of its table before serving (one catalog read). */
export interface TableShape {
  /** `relkind`: `r` ordinary, `p` partitioned; null when the table does not exist. */
  kind: string | null;
  /** The table is itself a partition of another (the old table after a migration). */
  leaf: boolean;
  /** `RANGE (expires_at)` for the partitioned layout. */
  key: string | null;
  hasDefault: boolean;
  /** The server's default_transaction_isolation for this connection's role and database. */
  defaultIsolation: string;
  /** The table has the `steps` column that recovery points need. */
  hasSteps: boolean;
}

/** Reads the shape of `table` and the server's default isolation, in one catalog query. */
export async function readTableShape(pool: Pool, table: string): Promise<TableShape> {
  const { rows } = await pool.query<{
    kind: string | null;
    leaf: boolean | null;
    key: string | null;
    has_default: boolean | null;
    isolation: string;
    has_steps: boolean;
  }>(
    `SELECT c.relkind::text AS kind, c.relispartition AS leaf, pg_get_partkeydef(c.oid) AS key,
            p.partdefid <> 0 AS has_default,
            current_setting('default_transaction_isolation') AS isolation,
            EXISTS (SELECT 1 FROM pg_attribute a
                     WHERE a.attrelid = t.oid AND a.attname = 'steps' AND NOT a.attisdropped)
              AS has_steps
       FROM (SELECT to_regclass($1) AS oid) t
       LEFT JOIN pg_class c ON c.oid = t.oid
       LEFT JOIN pg_partitioned_table p ON p.partrelid = t.oid`,
    [table],
  );
  const row = rows[0];
  return {
    kind: row.kind,
    leaf: row.leaf === true,
    key: row.key,
    hasDefault: row.has_default === true,
    defaultIsolation: row.isolation,
    hasSteps: row.has_steps,
  };
}

/**
 * Stops the start-up when the module records steps and `table` (which exists) lacks the column
 * they are kept in: every step would fail.
 */
export function assertStepsColumn(table: string, shape: TableShape): void {
  if (shape.kind !== null && !shape.hasSteps) {
    throw new Error(
      `nestjs-idempotency: the steps option keeps recovery points in a steps column, which ${table} lacks. Add it with addRecoveryPointsColumnSql() (ALTER TABLE ${table} ADD COLUMN steps jsonb), or the AddIdempotencyRecoveryPoints TypeORM migration.`,
    );
  }
}

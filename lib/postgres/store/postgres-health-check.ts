import type { Pool } from 'pg';
import type {
  IdempotencyHealthQuery,
  IdempotencyStoreHealth,
} from '../../store/idempotency-store-health.interface';
import type { IdempotencyTableLayout } from '../layout/table-layout';
import { asError } from '../driver/sqlstate';
import { HealthReads } from '../layout/health-reads';
import { openTransaction } from '../layout/planned';

/**
 * The store's health: `layout`'s details, read in one read-only transaction on a pool connection.
 * That it opens is what shows the database answers. The session settings are the transaction's
 * own (`SET LOCAL`), so the connection goes back to the pool as it came: a statement timeout for
 * every read, and the ISO DateStyle and UTC TimeZone that partition bounds are read back in.
 */
export async function readPostgresHealth(
  pool: Pool,
  layout: IdempotencyTableLayout,
  query: IdempotencyHealthQuery,
): Promise<IdempotencyStoreHealth> {
  const timeoutMs = Math.max(1, Math.round(query.detailTimeoutMs));
  const client = await pool.connect();
  try {
    const open = openTransaction('BEGIN READ ONLY', timeoutMs).map((statement) => statement.text);
    await client.query(
      [...open, "SET LOCAL DateStyle = 'ISO, YMD'", "SET LOCAL TimeZone = 'UTC'"].join('; '),
    );
    const health = await layout.health(new HealthReads(client), query);
    await client.query('ROLLBACK');
    client.release();
    return health;
  } catch (error) {
    // The connection may be in a transaction, or broken: it is not reused.
    client.release(asError(error));
    throw error;
  }
}

import type { Pool, PoolClient } from 'pg';
import type {
  IdempotencyHealthQuery,
  IdempotencyStoreHealth,
} from '../../store/idempotency-store-health.interface';
import type { IdempotencyTableLayout } from '../layout/table-layout';
import { SQLSTATE, asError, sqlstateOf } from '../driver/sqlstate';
import { openTransaction } from '../layout/planned';
import { oldestInFlightSql } from '../sql/health.sql';

/**
 * The reads of one health check, on one connection inside a read-only transaction whose
 * `statement_timeout` bounds each of them. A read the timeout cuts off ends as `undefined`, and
 * the transaction goes on for the next one (each read runs after a savepoint).
 */
export class HealthReads {
  constructor(private readonly client: PoolClient) {}

  async read<T>(run: (client: PoolClient) => Promise<T>): Promise<T | undefined> {
    await this.client.query('SAVEPOINT nestjs_idempotency_health');
    try {
      return await run(this.client);
    } catch (error) {
      if (sqlstateOf(error) !== SQLSTATE.queryCanceled) {
        throw error;
      }
      await this.client.query('ROLLBACK TO SAVEPOINT nestjs_idempotency_health');
      return undefined;
    }
  }
}

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

/** Age of the table's oldest live in-flight row (see `oldestInFlightSql`), or `'unknown'`. */
export async function readOldestInFlight(
  reads: HealthReads,
  table: string,
): Promise<number | null | 'unknown'> {
  const rows = await reads.read(
    async (client) =>
      (await client.query<{ age_ms: number | null }>(oldestInFlightSql(table))).rows,
  );
  if (rows === undefined) {
    return 'unknown';
  }
  const ageMs = rows[0].age_ms;
  // now() is the transaction's start: a row claimed since then reads as younger than zero.
  return ageMs === null ? null : Math.max(0, ageMs);
}

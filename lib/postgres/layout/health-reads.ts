import type { PoolClient } from 'pg';
import { SQLSTATE, sqlstateOf } from '../driver/sqlstate';
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

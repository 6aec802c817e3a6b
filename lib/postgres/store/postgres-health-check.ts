import type { Pool } from 'pg';
import type {
  IdempotencyHealthQuery,
  IdempotencyStoreHealth,
} from '../../store/idempotency-store-health.interface';
import type { IdempotencyTableLayout } from '../layout/table-layout';
import { guardCheckedOut } from '../driver/checked-out';
import { destroySocket } from '../driver/pg-internals';
import { asError } from '../driver/sqlstate';
import { HealthReads } from '../layout/health-reads';
import { openTransaction } from '../layout/planned';

/**
 * Slack, beyond what the server may legitimately take, before a check that is still unanswered
 * is taken for a frozen server or a silent network, in milliseconds.
 */
const UNANSWERED_SLACK_MS = 1_000;

/**
 * The store's health: `layout`'s details, read in one read-only transaction on a pool connection.
 * That it opens is what shows the database answers. The session settings are the transaction's
 * own (`SET LOCAL`), so the connection goes back to the pool as it came: a statement timeout for
 * every read, and the ISO DateStyle and UTC TimeZone that partition bounds are read back in.
 *
 * `statement_timeout` bounds each read on a server that runs; one that is frozen, or a network
 * that drops everything, answers nothing, and the connection would stay checked out until TCP
 * gives up. Past what the check's statements may take (the opening, up to three reads and the
 * rollback, each within the detail timeout), or past the caller's own wait when that is longer,
 * plus some slack, the connection is destroyed: the check fails, and the pool opens a new one when
 * it needs it.
 */
export async function readPostgresHealth(
  pool: Pool,
  layout: IdempotencyTableLayout,
  query: IdempotencyHealthQuery,
): Promise<IdempotencyStoreHealth> {
  const timeoutMs = Math.max(1, Math.round(query.detailTimeoutMs));
  const client = await pool.connect();
  const release = guardCheckedOut(client);
  const unansweredAfterMs = Math.max(5 * timeoutMs, query.timeoutMs ?? 0) + UNANSWERED_SLACK_MS;
  const deadline = setTimeout(() => {
    // The destroyed client reports the error on its statement in flight.
    destroySocket(
      client,
      new Error(`PostgreSQL left the health check unanswered for ${unansweredAfterMs} ms`),
    );
  }, unansweredAfterMs);
  deadline.unref();
  try {
    const open = openTransaction('BEGIN READ ONLY', timeoutMs).map((statement) => statement.text);
    await client.query(
      [...open, "SET LOCAL DateStyle = 'ISO, YMD'", "SET LOCAL TimeZone = 'UTC'"].join('; '),
    );
    const health = await layout.health(new HealthReads(client), query);
    await client.query('ROLLBACK');
    release();
    return health;
  } catch (error) {
    // The connection may be in a transaction, or broken: it is not reused.
    release(asError(error));
    throw error;
  } finally {
    clearTimeout(deadline);
  }
}

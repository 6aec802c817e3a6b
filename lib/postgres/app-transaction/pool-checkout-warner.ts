import type { Pool } from 'pg';
import type { IdempotencyTransactionContext } from '../../transaction/idempotency-transaction.context';
import { outsideTransactionWarning } from '../../transaction/outside-transaction-warning';

/**
 * Warns (once per route) when a transactional request's handler takes a connection from the
 * application's pool while its transaction is open: a query on the pool or on the ORM's root
 * instance, or a transaction of another host, none of which is `txHost.tx`. The request's own
 * transaction took its connection before the handler started.
 *
 * It wraps the pool's `connect` (which `pool.query` and every ORM on the pool go through), so it
 * costs one AsyncLocalStorage lookup per checkout, and nothing per query. Each registration of the
 * module watches with its own context, which only its own routes run in.
 */
export function warnOnPoolCheckoutsOutsideTransaction(
  pool: Pool,
  context: IdempotencyTransactionContext,
): void {
  const warning = outsideTransactionWarning(
    context,
    'a query on the pool or the ORM itself, or a transaction of its own?',
    "Write through your TransactionHost's tx.",
  );
  const connect = pool.connect.bind(pool) as (...args: unknown[]) => unknown;
  pool.connect = ((...args: unknown[]) => {
    warning.notice();
    return connect(...args);
  }) as Pool['connect'];
}

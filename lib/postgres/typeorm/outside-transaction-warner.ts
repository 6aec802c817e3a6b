import type { DataSource } from 'typeorm';
import type { IdempotencyTransactionContext } from '../../transaction/idempotency-transaction.context';
import { outsideTransactionWarning } from '../../transaction/outside-transaction-warning';

/**
 * Warns (once per route) when a transactional request's handler takes a second connection from
 * the DataSource, which is what a write through an injected repository does.
 *
 * It wraps the driver's connection getter, so it costs one AsyncLocalStorage lookup per pooled
 * connection checkout, and nothing per query.
 */
export function warnOnQueriesOutsideTransaction(
  dataSource: DataSource,
  context: IdempotencyTransactionContext,
): void {
  const driver = dataSource.driver as {
    obtainMasterConnection?: (...args: unknown[]) => Promise<unknown>;
  };
  if (!driver.obtainMasterConnection) {
    return;
  }
  const warning = outsideTransactionWarning(
    context,
    'an injected repository or DataSource?',
    'Use IdempotencyTransaction.manager or @IdempotentEntityManager().',
  );
  const obtain = driver.obtainMasterConnection.bind(driver);
  driver.obtainMasterConnection = (...args: unknown[]) => {
    warning.notice();
    return obtain(...args);
  };
}

import { Logger } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import type { IdempotencyTransactionContext } from '../../transaction/idempotency-transaction.context';

/**
 * Development aid: warns (once per route) when a transactional request's handler takes a second
 * connection from the DataSource, which is what a write through an injected repository does. Such
 * writes commit on their own and survive a rollback of the idempotency transaction.
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
  const logger = new Logger('IdempotencyTransaction');
  const warned = new Set<string>();
  const obtain = driver.obtainMasterConnection.bind(driver);
  driver.obtainMasterConnection = (...args: unknown[]) => {
    const current = context.current();
    if (current && !warned.has(current.route)) {
      warned.add(current.route);
      logger.warn(
        `${current.route} queried the database outside its idempotency transaction (an injected repository or DataSource?). Those writes commit on their own. Use IdempotencyTransaction.manager or @IdempotentEntityManager().`,
      );
    }
    return obtain(...args);
  };
}

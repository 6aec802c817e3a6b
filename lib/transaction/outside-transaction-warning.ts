import { Logger } from '@nestjs/common';
import type { IdempotencyTransactionContext } from './idempotency-transaction.context';

/**
 * Development aid for stores that run transactional routes: `notice()`, called where the
 * application takes a database connection of its own, warns (once per route) when that happens
 * while a transactional request's handler runs (not while its response is recorded, when hooks
 * such as `onOutcome` may query as they like). Such a connection is not the request's
 * transaction, so its writes commit on their own and survive a rollback of the transaction.
 *
 * @param suspects - what usually takes that connection, for the message
 * @param advice - how to write through the request's transaction instead
 */
export function outsideTransactionWarning(
  context: IdempotencyTransactionContext,
  suspects: string,
  advice: string,
): { notice(): void } {
  const logger = new Logger('IdempotencyTransaction');
  const warned = new Set<string>();
  return {
    notice: () => {
      const current = context.current();
      if (current && !current.recording && !warned.has(current.route)) {
        warned.add(current.route);
        logger.warn(
          `${current.route} queried the database outside its idempotency transaction (${suspects}). Those writes commit on their own. ${advice}`,
        );
      }
    },
  };
}

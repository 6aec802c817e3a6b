import type { OnApplicationShutdown } from '@nestjs/common';
import type { Pool } from 'pg';
import type { IdempotencyTransactionContext } from '../../transaction/idempotency-transaction.context';
import { outsideTransactionWarning } from '../../transaction/outside-transaction-warning';

/** The warnings watching each pool: one wrapper of `connect` per pool, however many apps share it. */
const watching = new WeakMap<Pool, Set<{ notice(): void }>>();

/**
 * Warns (once per route) when a transactional request's handler takes a connection from the
 * application's pool while its transaction is open: a query on the pool or on the ORM's root
 * instance, or a transaction of another host, none of which is `txHost.tx`. The request's own
 * transaction took its connection before the handler started.
 *
 * It wraps the pool's `connect` (which `pool.query` and every ORM on the pool go through), so it
 * costs one AsyncLocalStorage lookup per checkout and registration, and nothing per query. Each
 * registration of the module watches with its own context, which only its own routes run in, and
 * stops as its application shuts down.
 */
export class PoolCheckoutWarner implements OnApplicationShutdown {
  private readonly warnings: Set<{ notice(): void }>;
  private readonly warning: { notice(): void };

  constructor(pool: Pool, context: IdempotencyTransactionContext) {
    this.warning = outsideTransactionWarning(
      context,
      'a query on the pool or the ORM itself, or a transaction of its own?',
      "Write through your TransactionHost's tx.",
    );
    let warnings = watching.get(pool);
    if (warnings === undefined) {
      const all = new Set<{ notice(): void }>();
      const connect = pool.connect.bind(pool) as (...args: unknown[]) => unknown;
      pool.connect = ((...args: unknown[]) => {
        for (const warning of all) {
          warning.notice();
        }
        return connect(...args);
      }) as Pool['connect'];
      watching.set(pool, all);
      warnings = all;
    }
    this.warnings = warnings;
    this.warnings.add(this.warning);
  }

  onApplicationShutdown(): void {
    this.warnings.delete(this.warning);
  }
}

import { Logger } from '@nestjs/common';
import type { Pool } from 'pg';
import { PoolCheckoutWarner } from '../../../lib/postgres/app-transaction/pool-checkout-warner';
import { IdempotencyTransactionContext } from '../../../lib/transaction/idempotency-transaction.context';

/*
 * The warning for a handler that takes a connection of the application's pool while its
 * transaction is open. Against a stand-in pool counting checkouts; the same warning through a
 * real pool and ORM is in test/e2e/cls-transactional.e2e-spec.ts.
 */

function standInPool() {
  const pool = { checkouts: 0, connect: async () => (pool.checkouts++, 'client') };
  return pool;
}

describe('PoolCheckoutWarner', () => {
  let warnings: string[];
  let original: typeof Logger.prototype.warn;

  beforeEach(() => {
    warnings = [];
    original = Logger.prototype.warn;
    Logger.prototype.warn = function (message: unknown) {
      warnings.push(String(message));
    };
  });
  afterEach(() => {
    Logger.prototype.warn = original;
  });

  it('warns once per route for checkouts inside its transaction, and hands the connection on', async () => {
    const pool = standInPool();
    const context = new IdempotencyTransactionContext();
    new PoolCheckoutWarner(pool as unknown as Pool, context);

    await expect(pool.connect()).resolves.toBe('client');
    expect(warnings).toEqual([]);

    const inRoute = (route: string) =>
      context.run({ transaction: 'tx', route }, () => pool.connect());
    await inRoute('Orders.create');
    await inRoute('Orders.create');
    await inRoute('Refunds.create');
    expect(pool.checkouts).toBe(4);
    expect(warnings).toEqual([
      expect.stringMatching(
        /^Orders\.create queried the database outside its idempotency transaction .*TransactionHost's tx\.$/,
      ),
      expect.stringMatching(/^Refunds\.create queried/),
    ]);
  });

  it('does not warn while the response is recorded, when hooks such as onOutcome run', async () => {
    const pool = standInPool();
    const context = new IdempotencyTransactionContext();
    new PoolCheckoutWarner(pool as unknown as Pool, context);
    await context.run({ transaction: 'tx', route: 'Orders.create', recording: true }, () =>
      pool.connect(),
    );
    expect(warnings).toEqual([]);
  });

  it("watches only its own registration's routes, with one wrapper per pool, until shutdown", async () => {
    const pool = standInPool();
    const unwrapped = pool.connect;
    const mine = new IdempotencyTransactionContext();
    const other = new IdempotencyTransactionContext();
    const first = new PoolCheckoutWarner(pool as unknown as Pool, mine);
    const wrapped = pool.connect;
    expect(wrapped).not.toBe(unwrapped);
    const second = new PoolCheckoutWarner(pool as unknown as Pool, other);
    expect(pool.connect).toBe(wrapped);
    await other.run({ transaction: 'tx', route: 'Other.route' }, () => pool.connect());
    expect(warnings).toEqual([expect.stringMatching(/^Other\.route queried/)]);

    first.onApplicationShutdown();
    second.onApplicationShutdown();
    await other.run({ transaction: 'tx', route: 'Other.later' }, () => pool.connect());
    await mine.run({ transaction: 'tx', route: 'Mine.later' }, () => pool.connect());
    expect(warnings).toHaveLength(1);
  });
});

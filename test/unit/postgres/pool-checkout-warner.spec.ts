import { Logger } from '@nestjs/common';
import type { Pool } from 'pg';
import { warnOnPoolCheckoutsOutsideTransaction } from '../../../lib/postgres/app-transaction/pool-checkout-warner';
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

describe('warnOnPoolCheckoutsOutsideTransaction', () => {
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
    warnOnPoolCheckoutsOutsideTransaction(pool as unknown as Pool, context);

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

  it("watches only its own registration's routes", async () => {
    const pool = standInPool();
    const mine = new IdempotencyTransactionContext();
    const other = new IdempotencyTransactionContext();
    warnOnPoolCheckoutsOutsideTransaction(pool as unknown as Pool, mine);
    warnOnPoolCheckoutsOutsideTransaction(pool as unknown as Pool, other);
    await other.run({ transaction: 'tx', route: 'Other.route' }, () => pool.connect());
    expect(warnings).toEqual([expect.stringMatching(/^Other\.route queried/)]);
  });
});

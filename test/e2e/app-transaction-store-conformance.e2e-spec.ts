import { randomUUID } from 'node:crypto';
import { Logger } from '@nestjs/common';
import pg from 'pg';
import {
  AppTransactionIdempotencyStore,
  type PostgresAppTransactions,
  createIdempotencyTableSql,
} from '../../lib/postgres/pool';
import { describeIdempotencyStore } from '../../lib/testing';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';

/*
 * The store conformance suite for the store that runs transactional routes in the application's
 * own transactions, with the simplest such application: transactions on a pg pool client. (The
 * nestjs-cls adapters are tested over HTTP in cls-transactional.e2e-spec.ts.)
 */

const SINGLE = 'app_tx_conformance_records';
let db: TestDatabase;
let pool: pg.Pool;

beforeAll(async () => {
  Logger.overrideLogger(false);
  db = await createTestDatabase();
  await db.query(createIdempotencyTableSql(SINGLE));
  await db.query('CREATE TABLE conformance_writes (marker text)');
  pool = new pg.Pool({ connectionString: db.url, max: 10 });
  pool.on('error', () => undefined);
});
afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

/** The application's transactions: BEGIN, the work, COMMIT or ROLLBACK, on one pool client. */
const transactions: PostgresAppTransactions<pg.PoolClient> = {
  run: async (work) => {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  },
  query: async (tx, text, values) => (await tx.query(text, [...values])).rows,
};

/** The same transactions, showing their pg client: the store pipelines its statements on it. */
const pipelined: PostgresAppTransactions<pg.PoolClient> = { ...transactions, client: (tx) => tx };

describe.each([
  ['statement by statement through query', transactions],
  ["pipelined on the transaction's client", pipelined],
])('AppTransactionIdempotencyStore, single table, %s', (_how, appTransactions) => {
  describeIdempotencyStore(
    'conformance',
    async () => {
      await db.query(`TRUNCATE ${SINGLE}`);
      return new AppTransactionIdempotencyStore(pool, appTransactions, SINGLE);
    },
    {
      transactional: true,
      keyAdmin: 'listing',
      recoveryPoints: true,
      transactionWrites: {
        write: async (transaction, marker) => {
          await (transaction.transaction as pg.PoolClient).query(
            'INSERT INTO conformance_writes (marker) VALUES ($1)',
            [marker],
          );
        },
        isCommitted: async (marker) =>
          (await db.query('SELECT 1 FROM conformance_writes WHERE marker = $1', [marker]))
            .length === 1,
      },
      countRecords: async () =>
        Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${SINGLE}`))[0].n),
      longMs: 10_000,
    },
  );
});

describe('AppTransactionIdempotencyStore, its round trips', () => {
  /**
   * `base`, counting the application's transactions it opens and the calls made on their clients
   * while the store works in them (the BEGIN and COMMIT of `run` itself are not counted).
   */
  function counting(base: PostgresAppTransactions<pg.PoolClient>) {
    const counts = { transactions: 0, clientCalls: 0 };
    const transactions: PostgresAppTransactions<pg.PoolClient> = {
      ...base,
      run: (work) => {
        counts.transactions++;
        return base.run(async (tx) => {
          const query = tx.query;
          tx.query = ((...args: Parameters<typeof query>) => {
            counts.clientCalls++;
            return query.apply(tx, args);
          }) as typeof query;
          try {
            return await work(tx);
          } finally {
            tx.query = query;
          }
        });
      },
    };
    return { counts, transactions };
  }
  const requestFor = (key: string) => ({
    scope: 'round-trips',
    key: `${key}-${randomUUID()}`,
    fingerprint: 'fp-1',
    lockTimeoutMs: 10_000,
    ttlMs: 60_000,
  });
  const response = { status: 201, headers: { 'x-tag': 'round-trips' }, body: Buffer.from('{}') };

  it.each([
    ['through query', transactions],
    ['on the client', pipelined],
  ])(
    'answers a finished key, a mismatch and a held key with one read, opening no transaction (%s)',
    async (_how, base) => {
      const { counts, transactions: counted } = counting(base);
      const store = new AppTransactionIdempotencyStore(pool, counted, SINGLE);
      const finished = requestFor('finished');
      const first = await store.claimInTransaction(finished);
      expect(first.kind).toBe('claimed');
      if (first.kind !== 'claimed') return;
      await first.transaction.completeAndCommit(response, finished.ttlMs);
      expect(counts.transactions).toBe(1);

      expect(await store.claimInTransaction(finished)).toEqual({ kind: 'replay', response });
      expect(await store.claimInTransaction({ ...finished, fingerprint: 'fp-2' })).toEqual({
        kind: 'mismatch',
      });
      expect(counts.transactions).toBe(1);

      const held = requestFor('held');
      const holder = await store.claimInTransaction(held);
      expect(holder.kind).toBe('claimed');
      expect(counts.transactions).toBe(2);
      expect(await store.claimInTransaction(held)).toEqual({ kind: 'busy' });
      expect(counts.transactions).toBe(2);
      if (holder.kind === 'claimed') await holder.transaction.rollback();

      // Rolled back: free again, and claimed in a transaction.
      const again = await store.claimInTransaction(held);
      expect(again.kind).toBe('claimed');
      expect(counts.transactions).toBe(3);
      if (again.kind === 'claimed') await again.transaction.rollback();
    },
  );

  it.each([
    ['through query', transactions, { claim: 3, write: 1 }],
    ['on the client', pipelined, { claim: 1, write: 1 }],
  ])(
    'claims (with its statement timeout and savepoint) and writes the response (%s): round trips as expected',
    async (_how, base, expected) => {
      const { counts, transactions: counted } = counting(base);
      const store = new AppTransactionIdempotencyStore(pool, counted, SINGLE);
      const request = requestFor('timed');
      const claimed = await store.claimInTransaction(request, {
        statementTimeoutMs: 1234,
        graceMs: 1000,
      });
      expect(claimed.kind).toBe('claimed');
      if (claimed.kind !== 'claimed') return;
      // SET LOCAL statement_timeout, the claim and its savepoint.
      expect(counts.clientCalls).toBe(expected.claim);
      const { rows } = await claimed.transaction.transaction.query<{ statement_timeout: string }>(
        'SHOW statement_timeout',
      );
      expect(rows[0].statement_timeout).toBe('1234ms');
      await claimed.transaction.completeAndCommit(response, request.ttlMs);
      expect(counts.clientCalls).toBe(expected.claim + 1 + expected.write);
      expect(await store.lookup(request)).toEqual({ kind: 'replay', response });
    },
  );

  it.each([
    ['through query', transactions, 2],
    ['on the client', pipelined, 1],
  ])(
    'discards the writes and stores the response alone (%s): round trips as expected',
    async (_how, base, expected) => {
      const { counts, transactions: counted } = counting(base);
      const store = new AppTransactionIdempotencyStore(pool, counted, SINGLE);
      const request = requestFor('discarded');
      const claimed = await store.claimInTransaction(request);
      expect(claimed.kind).toBe('claimed');
      if (claimed.kind !== 'claimed') return;
      const claimCalls = counts.clientCalls;
      // ROLLBACK TO the claim's savepoint, then the response's write.
      await claimed.transaction.discardWritesAndComplete(response, request.ttlMs);
      expect(counts.clientCalls - claimCalls).toBe(expected);
      expect(await store.lookup(request)).toEqual({ kind: 'replay', response });
    },
  );

  it('refuses a client that is a pool, which would run the claim outside the transaction', async () => {
    const store = new AppTransactionIdempotencyStore(
      pool,
      { ...transactions, client: () => pool as unknown as pg.PoolClient },
      SINGLE,
    );
    const request = requestFor('pool-as-client');
    await expect(store.claimInTransaction(request)).rejects.toThrow(
      /transactionHost\.client gave a pg Pool/,
    );
    // Nothing was claimed, and every connection went back to the pool.
    expect(await store.lookup(request)).toBe(null);
    expect(pool.totalCount).toBe(pool.idleCount);
  });
});

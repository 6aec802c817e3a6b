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

describeIdempotencyStore(
  'AppTransactionIdempotencyStore, single table',
  async () => {
    await db.query(`TRUNCATE ${SINGLE}`);
    return new AppTransactionIdempotencyStore(pool, transactions, SINGLE);
  },
  {
    transactional: true,
    keyAdmin: 'listing',
    transactionWrites: {
      write: async (transaction, marker) => {
        await (transaction.transaction as pg.PoolClient).query(
          'INSERT INTO conformance_writes (marker) VALUES ($1)',
          [marker],
        );
      },
      isCommitted: async (marker) =>
        (await db.query('SELECT 1 FROM conformance_writes WHERE marker = $1', [marker])).length ===
        1,
    },
    countRecords: async () =>
      Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${SINGLE}`))[0].n),
    longMs: 10_000,
  },
);

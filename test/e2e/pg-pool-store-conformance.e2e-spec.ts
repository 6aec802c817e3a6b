import { Logger } from '@nestjs/common';
import pg from 'pg';
import {
  PgPoolIdempotencyStore,
  createIdempotencyTableSql,
  createPartitionedIdempotencyTableSql,
} from '../../lib/postgres/pool';
import { resolvePartitioning } from '../../lib/postgres/postgres-store.options';
import { describeIdempotencyStore } from '../../lib/testing';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';

/*
 * The store conformance suite on real PostgreSQL for the store on a plain node-postgres Pool, for
 * both layouts of the table. Lease mode only: it must declare itself not transactional, and the
 * suite checks that it is not one. Without recovery points: these runs check the statements of
 * a module without `steps` options (the TypeORM store's runs check the ones with them). Each test
 * gets an emptied table and a new store on one shared Pool, as the application would share its own.
 */

const SINGLE = 'pg_pool_conformance_records';
const PARTITIONED = 'pg_pool_conformance_partitioned';
/** What must outlast a test; the partitions must reach twice as far ahead (lease + TTL). */
const LONG_MS = 10_000;
/** Partitions of one second, so that a purge finds expired ones within a test. */
const PARTITION_MS = 1000;

let db: TestDatabase;
let pool: pg.Pool;

beforeAll(async () => {
  // The partitioned store logs every partition it creates and drops: a few per test here.
  Logger.overrideLogger(false);
  db = await createTestDatabase();
  await db.query(createIdempotencyTableSql(SINGLE));
  await db.query(createPartitionedIdempotencyTableSql(PARTITIONED));
  // As large as TypeORM's default pool, which the TypeORM store's suite runs on.
  pool = new pg.Pool({ connectionString: db.url, max: 10 });
  // An idle client's error (the database dropped under it at the end) must not end the worker.
  pool.on('error', () => undefined);
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

const emptied = async (table: string) => {
  await db.query(`TRUNCATE ${table}`);
};
const countRecords = (table: string) => async () =>
  Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`))[0].n);

describeIdempotencyStore(
  'PgPoolIdempotencyStore, single table',
  async () => {
    await emptied(SINGLE);
    return new PgPoolIdempotencyStore(pool, SINGLE);
  },
  {
    transactional: false,
    keyAdmin: 'listing',
    countRecords: countRecords(SINGLE),
    longMs: LONG_MS,
  },
);

describeIdempotencyStore(
  'PgPoolIdempotencyStore, table partitioned by expiry, on a pool given lazily',
  async () => {
    await emptied(PARTITIONED);
    const partitioning = resolvePartitioning(
      { partitionMs: PARTITION_MS, aheadMs: 3 * LONG_MS },
      { ttlMs: LONG_MS, lockTimeoutMs: LONG_MS },
    );
    // The constructor's other form: a function that gives the pool each time the store needs it.
    return new PgPoolIdempotencyStore(() => pool, PARTITIONED, partitioning);
  },
  {
    transactional: false,
    keyAdmin: 'listing',
    countRecords: countRecords(PARTITIONED),
    longMs: LONG_MS,
    purge: 'bulk',
    purgeLagMs: PARTITION_MS,
  },
);

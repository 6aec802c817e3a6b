import { Logger } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import {
  PostgresIdempotencyStore,
  createIdempotencyTableSql,
  createPartitionedIdempotencyTableSql,
} from '../../lib/postgres';
import { resolvePartitioning } from '../../lib/postgres/postgres-store.options';
import { type ConformanceTransactionWrites, describeIdempotencyStore } from '../../lib/testing';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';

/*
 * The store conformance suite on real PostgreSQL, for both layouts of the table. Each test gets
 * an emptied table and a new store on one shared DataSource, built as IdempotencyModule builds it.
 */

const SINGLE = 'conformance_records';
const PARTITIONED = 'conformance_partitioned';
/** What must outlast a test; the partitions must reach twice as far ahead (lease + TTL). */
const LONG_MS = 10_000;
/** Partitions of one second, so that a purge finds expired ones within a test. */
const PARTITION_MS = 1000;

let db: TestDatabase;
let dataSource: DataSource;

beforeAll(async () => {
  // The partitioned store logs every partition it creates and drops: a few per test here.
  Logger.overrideLogger(false);
  db = await createTestDatabase();
  await db.query(createIdempotencyTableSql(SINGLE));
  await db.query(createPartitionedIdempotencyTableSql(PARTITIONED));
  await db.query('CREATE TABLE conformance_writes (marker text PRIMARY KEY)');
  dataSource = new DataSource({ type: 'postgres', url: db.url });
  await dataSource.initialize();
});

afterAll(async () => {
  await dataSource?.destroy();
  await db?.drop();
});

const emptied = async (table: string) => {
  await db.query(`TRUNCATE ${table}`);
};
const countRecords = (table: string) => async () =>
  Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`))[0].n);
/** A handler's writes: one row per marker, through the request's transaction. */
const transactionWrites: ConformanceTransactionWrites = {
  write: async (transaction, marker) => {
    await (transaction.transaction as EntityManager).query(
      'INSERT INTO conformance_writes (marker) VALUES ($1)',
      [marker],
    );
  },
  isCommitted: async (marker) =>
    (await db.query('SELECT 1 FROM conformance_writes WHERE marker = $1', [marker])).length === 1,
};

describeIdempotencyStore(
  'PostgresIdempotencyStore, single table',
  async () => {
    await emptied(SINGLE);
    return new PostgresIdempotencyStore(dataSource, SINGLE);
  },
  {
    transactional: true,
    keyAdmin: 'listing',
    recoveryPoints: true,
    transactionWrites,
    countRecords: countRecords(SINGLE),
    longMs: LONG_MS,
  },
);

describeIdempotencyStore(
  'PostgresIdempotencyStore, table partitioned by expiry',
  async () => {
    await emptied(PARTITIONED);
    const partitioning = resolvePartitioning(
      { partitionMs: PARTITION_MS, aheadMs: 3 * LONG_MS },
      { ttlMs: LONG_MS, lockTimeoutMs: LONG_MS },
    );
    return new PostgresIdempotencyStore(dataSource, PARTITIONED, partitioning);
  },
  {
    transactional: true,
    keyAdmin: 'listing',
    recoveryPoints: true,
    transactionWrites,
    countRecords: countRecords(PARTITIONED),
    longMs: LONG_MS,
    purge: 'bulk',
    purgeLagMs: PARTITION_MS,
  },
);

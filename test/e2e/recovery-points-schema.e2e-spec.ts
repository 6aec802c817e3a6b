import { Logger } from '@nestjs/common';
import { DataSource } from 'typeorm';
import pg from 'pg';
import {
  AddIdempotencyRecoveryPoints1796601600000,
  CreateIdempotencyRecords1764201600000,
  IdempotencyRecord,
  PgPoolIdempotencyStore,
  addRecoveryPointsColumnSql,
  createIdempotencyTableSql,
  partitionedMigrationSql,
} from '../../lib/postgres';
import { resolvePartitioning } from '../../lib/postgres/postgres-store.options';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';

/*
 * Tables made before recovery points had a column: stores that record no steps keep working on
 * them, a store asked to record steps refuses to start until the column is added, and each way of
 * adding it (the SQL, the TypeORM migration, the partitioning migration) does.
 */

const LONG_MS = 60_000;
const request = (key: string) => ({
  scope: 'schema',
  key,
  fingerprint: 'fp',
  lockTimeoutMs: LONG_MS,
  ttlMs: LONG_MS,
});
const step = { name: 'charge', result: '{"value":1}' };

let db: TestDatabase;
let pool: pg.Pool;

beforeAll(async () => {
  // The partitioned store logs every partition it creates.
  Logger.overrideLogger(false);
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 2 });
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

/** An idempotency table as the module made it before recovery points. */
async function tableWithoutSteps(table: string): Promise<void> {
  await db.query(createIdempotencyTableSql(table));
  await db.query(`ALTER TABLE ${table} DROP COLUMN steps`);
}

describe('a table without the steps column', () => {
  it('serves a store that records no steps: claim, completion, replay and release', async () => {
    await tableWithoutSteps('before_steps');
    const store = new PgPoolIdempotencyStore(pool, 'before_steps');
    await store.prepare();
    const claimed = await store.claim(request('plain'));
    expect(claimed).toMatchObject({ kind: 'claimed' });
    expect((claimed as { steps?: unknown }).steps).toBeUndefined();
    const { handle } = claimed as Extract<typeof claimed, { kind: 'claimed' }>;
    const response = { status: 201, headers: {}, body: Buffer.from('{}') };
    expect(await store.complete(handle, response, LONG_MS)).toBe(true);
    expect((await store.claim(request('plain'))).kind).toBe('replay');
    const other = await store.claim(request('released'));
    expect(await store.release((other as Extract<typeof other, { kind: 'claimed' }>).handle)).toBe(
      true,
    );
    expect((await store.claim(request('released'))).kind).toBe('claimed');
  });

  it('stops a store that records steps at start-up, saying how to add the column', async () => {
    await tableWithoutSteps('refused_steps');
    const store = new PgPoolIdempotencyStore(pool, 'refused_steps');
    store.enableRecoveryPoints();
    await expect(store.prepare()).rejects.toThrow(
      /steps column, which refused_steps lacks\. Add it with addRecoveryPointsColumnSql\(\)/,
    );
    await db.query(addRecoveryPointsColumnSql('refused_steps'));
    await db.query(addRecoveryPointsColumnSql('refused_steps'));
    await store.prepare();
    const claimed = await store.claim(request('after-column'));
    const { handle } = claimed as Extract<typeof claimed, { kind: 'claimed' }>;
    expect(await store.saveStep(handle, 0, step, LONG_MS)).toBe(true);
  });
});

describe('the AddIdempotencyRecoveryPoints migration', () => {
  it('adds the column to a table made by the first migration, and the entity then matches it', async () => {
    const database = await createTestDatabase();
    const dataSource = new DataSource({
      type: 'postgres',
      url: database.url,
      entities: [IdempotencyRecord],
      migrations: [CreateIdempotencyRecords1764201600000],
    });
    try {
      await dataSource.initialize();
      await dataSource.runMigrations();
      // The first migration as it ran before the column existed.
      await dataSource.query('ALTER TABLE idempotency_records DROP COLUMN steps');
      dataSource.setOptions({
        migrations: [
          CreateIdempotencyRecords1764201600000,
          AddIdempotencyRecoveryPoints1796601600000,
        ],
      });
      await dataSource.destroy();
      await dataSource.initialize();
      expect((await dataSource.runMigrations()).map((m) => m.name)).toEqual([
        'AddIdempotencyRecoveryPoints1796601600000',
      ]);
      const schemaDiff = await dataSource.driver.createSchemaBuilder().log();
      expect(schemaDiff.upQueries).toEqual([]);
      await dataSource.undoLastMigration();
      const columns = await database.query(
        "SELECT 1 FROM information_schema.columns WHERE table_name = 'idempotency_records' AND column_name = 'steps'",
      );
      expect(columns).toHaveLength(0);
    } finally {
      await dataSource.destroy().catch(() => undefined);
      await database.drop();
    }
  });
});

describe('the partitioning migration of a table without the steps column', () => {
  it('adds the column, so the table attaches and claims keep their steps', async () => {
    await tableWithoutSteps('old_records');
    const migration = partitionedMigrationSql(new Date(Date.now() + 2 * LONG_MS), 'old_records');
    for (const statement of migration.prepare) {
      await db.query(statement);
    }
    await db.query(migration.switch);
    const partitioning = resolvePartitioning({}, { ttlMs: LONG_MS, lockTimeoutMs: LONG_MS });
    const store = new PgPoolIdempotencyStore(pool, migration.partitionedTable, partitioning);
    store.enableRecoveryPoints();
    await store.prepare();
    const claimed = await store.claim(request('partitioned'));
    const { handle } = claimed as Extract<typeof claimed, { kind: 'claimed' }>;
    expect(await store.saveStep(handle, 0, step, LONG_MS)).toBe(true);
    expect(await store.release(handle)).toBe(true);
    expect(await store.claim(request('partitioned'))).toMatchObject({
      kind: 'claimed',
      steps: [step],
    });
  });
});

import { DataSource } from 'typeorm';
import {
  CreateIdempotencyRecords1764201600000,
  IdempotencyRecord,
  createIdempotencyTableSql,
} from '../../lib/postgres';
import { FixtureAppModule } from './fixtures/fixture-app.module';
import { ADAPTERS, createTestApp } from '../utils/test-app';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';

describe('idempotency table', () => {
  let db: TestDatabase;
  let dataSource: DataSource;

  beforeAll(async () => {
    db = await createTestDatabase();
    dataSource = new DataSource({
      type: 'postgres',
      url: db.url,
      entities: [IdempotencyRecord],
      migrations: [CreateIdempotencyRecords1764201600000],
    });
    await dataSource.initialize();
    await dataSource.runMigrations();
  });

  afterAll(async () => {
    await dataSource?.destroy();
    await db?.drop();
  });

  it('is an ordinary logged table with the unique (scope, key) and an expiry index', async () => {
    const [table] = await db.query<{ relpersistence: string }>(
      "SELECT relpersistence FROM pg_class WHERE relname = 'idempotency_records'",
    );
    expect(table.relpersistence).toBe('p');
    const indexes = await db.query<{ indexname: string; indexdef: string }>(
      "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'idempotency_records' ORDER BY indexname",
    );
    expect(indexes.map((index) => index.indexdef)).toEqual([
      expect.stringMatching(/^CREATE INDEX idempotency_records_expires_at_idx .* \(expires_at\)$/),
      expect.stringMatching(/^CREATE UNIQUE INDEX idempotency_records_pkey .* \(scope, key\)$/),
    ]);
  });

  it('matches the IdempotencyRecord entity: synchronize would change nothing', async () => {
    const sql = await dataSource.driver.createSchemaBuilder().log();
    expect(sql.upQueries.map((query) => query.query)).toEqual([]);
  });

  it('runs the migration only once and can be reverted', async () => {
    expect(await dataSource.runMigrations()).toEqual([]);
    await dataSource.undoLastMigration();
    const tables = await db.query("SELECT 1 FROM pg_class WHERE relname = 'idempotency_records'");
    expect(tables).toHaveLength(0);
  });
});

describe.each(ADAPTERS)('a custom tableName (%s)', (adapter) => {
  it('keeps the keys in that (schema-qualified) table', async () => {
    const db = await createTestDatabase();
    await db.query('CREATE SCHEMA billing');
    await db.query(createIdempotencyTableSql('billing.idem_keys'));
    const app = await createTestApp(
      adapter,
      FixtureAppModule.register({
        databaseUrl: db.url,
        idempotency: { tableName: 'billing.idem_keys' },
      }),
    );
    try {
      const first = await app.http().post('/orders').set('Idempotency-Key', 'k').send({ a: 1 });
      const second = await app.http().post('/orders').set('Idempotency-Key', 'k').send({ a: 1 });
      expect(first.status).toBe(201);
      expect(second.headers['idempotent-replayed']).toBe('true');
      expect(second.text).toBe(first.text);
      expect(await db.query('SELECT key FROM billing.idem_keys')).toEqual([{ key: 'k' }]);
      expect(await db.query('SELECT key FROM idempotency_records')).toEqual([]);
    } finally {
      await app.close();
      await db.drop();
    }
  });
});

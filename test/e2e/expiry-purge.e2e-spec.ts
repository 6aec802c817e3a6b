import pg from 'pg';
import { IdempotencyPurger, IdempotencyStore } from '../../lib';
import { PostgresIdempotencyStore } from '../../lib/postgres';
import { resolveModuleSettings } from '../../lib/idempotency-options.defaults';
import { FixtureAppModule } from './fixtures/fixture-app.module';
import { ADAPTERS, type TestApp, createTestApp } from '../utils/test-app';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';
import { waitFor } from '../utils/wait-for';

const TTL_MS = 1000;
const PURGE_BATCH_SIZE = 1000;
/** The purge lock as the store takes it (see PURGE_SQL). */
const PURGE_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtext('idempotency_records:purge'))";
const TEST_TIMEOUT_MS = 30_000;

describe.each(ADAPTERS)('expiry and purge (%s)', (adapter) => {
  let db: TestDatabase;
  let app: TestApp;

  beforeAll(async () => {
    db = await createTestDatabase();
    app = await createTestApp(
      adapter,
      FixtureAppModule.register({
        databaseUrl: db.url,
        // No purge timer: expiry must hold on its own, and purges run only when a test says so.
        idempotency: { ttlMs: TTL_MS, purgeIntervalMs: 0, purgeBatchSize: PURGE_BATCH_SIZE },
      }),
    );
  }, TEST_TIMEOUT_MS);

  afterAll(async () => {
    await app?.close();
    await db?.drop();
  });

  const order = (key: string, body: object) =>
    app.http().post('/orders').set('Idempotency-Key', key).send(body);
  const count = async (sql: string, values: unknown[] = []) =>
    Number((await db.query<{ n: string }>(sql, values))[0].n);
  const executions = (key: string) =>
    count("SELECT count(*) AS n FROM executions WHERE route = 'create' AND idem_key = $1", [key]);
  const records = (key: string) =>
    count('SELECT count(*) AS n FROM idempotency_records WHERE key = $1', [key]);
  /** Expiry is decided on the database clock, so wait on it rather than on ours. */
  const waitUntilExpired = (key: string) =>
    waitFor(
      async () =>
        (await count(
          'SELECT count(*) AS n FROM idempotency_records WHERE key = $1 AND expires_at <= now()',
          [key],
        )) === 1,
    );
  /** Inserts finished keys of scope `scope` that expired (negative `ttlMs`) or are live. */
  const insertRecords = (scope: string, rows: number, ttlMs: number) =>
    db.query(
      `INSERT INTO idempotency_records
         (scope, key, fingerprint, state, lock_token, response_status, response_headers,
          response_body, completed_at, expires_at)
       SELECT $1, 'k-' || i, NULL, 'completed', gen_random_uuid(), 201, '{}', '\\x7b7d'::bytea,
              now(), now() + ($3::float8 - i) * interval '1 millisecond'
         FROM generate_series(1, $2::int) AS i`,
      [scope, rows, ttlMs],
    );
  const scopeRows = (scope: string) =>
    count('SELECT count(*) AS n FROM idempotency_records WHERE scope = $1', [scope]);

  it('replays a finished key within its TTL', async () => {
    const key = `fresh-${adapter}`;
    const first = await order(key, { item: 'a' });
    const second = await order(key, { item: 'a' });
    expect(first.status).toBe(201);
    expect(second.status).toBe(201);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.text).toBe(first.text);
    expect(await executions(key)).toBe(1);
  });

  it(
    'runs an expired key again with the same body, though its row was never purged',
    async () => {
      const key = `expired-${adapter}`;
      const first = await order(key, { item: 'a' });
      await waitUntilExpired(key);
      expect(await records(key)).toBe(1);

      const again = await order(key, { item: 'a' });
      expect(again.status).toBe(201);
      expect(again.headers['idempotent-replayed']).toBeUndefined();
      expect(again.text).not.toBe(first.text);
      expect(await executions(key)).toBe(2);
      expect(await records(key)).toBe(1);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'runs an expired key reused with a different body instead of answering 422',
    async () => {
      const key = `reused-${adapter}`;
      await order(key, { item: 'a' });
      await waitUntilExpired(key);

      const other = await order(key, { item: 'b' });
      expect(other.status).toBe(201);
      expect(other.headers['idempotent-replayed']).toBeUndefined();
      expect(await executions(key)).toBe(2);
      // The key now belongs to the new request: it replays, and the old body is the mismatch.
      const replay = await order(key, { item: 'b' });
      expect(replay.headers['idempotent-replayed']).toBe('true');
      expect(replay.text).toBe(other.text);
      expect((await order(key, { item: 'a' })).status).toBe(422);
      expect(await executions(key)).toBe(2);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'purges every expired key in batches and keeps the live ones',
    async () => {
      // Keys of the tests above expire at any moment; without them the count below is exact.
      await db.query('DELETE FROM idempotency_records');
      await insertRecords('expired', 2500, -3_600_000);
      await insertRecords('live', 10, 3_600_000);

      const deleted = await app.app.get(IdempotencyPurger).purgeNow();
      // 2500 is more than two batches of 1000: one statement would have left 1500.
      expect(deleted).toBe(2500);
      expect(await scopeRows('expired')).toBe(0);
      expect(await scopeRows('live')).toBe(10);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'keeps purging while batches come back full, past the hundred batches a pass used to stop at',
    async () => {
      await db.query('DELETE FROM idempotency_records');
      await insertRecords('backlog', 1500, -3_600_000);
      const purger = new IdempotencyPurger(
        resolveModuleSettings({ purgeIntervalMs: 0, purgeBatchSize: 10 }),
        app.app.get(IdempotencyStore),
      );

      // 150 full batches, well inside the time budget of one pass.
      expect(await purger.purgeNow()).toBe(1500);
      expect(await scopeRows('backlog')).toBe(0);
    },
    TEST_TIMEOUT_MS,
  );

  describe('while another connection holds a lock', () => {
    let holder: pg.Client;

    beforeEach(async () => {
      holder = new pg.Client({ connectionString: db.url });
      await holder.connect();
    });

    afterEach(async () => {
      await holder.end();
    });

    it(
      'purges nothing while another purger holds the purge lock, then purges once',
      async () => {
        const store = app.app.get(IdempotencyStore);
        expect(store).toBeInstanceOf(PostgresIdempotencyStore);
        await insertRecords('locked', 50, -3_600_000);

        await holder.query('BEGIN');
        await holder.query(PURGE_LOCK_SQL);
        // Two purgers at once, both behind the lock: neither waits and neither deletes.
        expect(
          await Promise.all([
            store.purgeExpired(PURGE_BATCH_SIZE),
            store.purgeExpired(PURGE_BATCH_SIZE),
          ]),
        ).toEqual([0, 0]);
        expect(await scopeRows('locked')).toBe(50);

        await holder.query('COMMIT');
        expect(await store.purgeExpired(PURGE_BATCH_SIZE)).toBe(50);
        expect(await scopeRows('locked')).toBe(0);
        expect(await store.purgeExpired(PURGE_BATCH_SIZE)).toBe(0);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'skips an expired row that a claim has locked, without waiting for it',
      async () => {
        const store = app.app.get(IdempotencyStore);
        await insertRecords('row-locked', 20, -3_600_000);

        await holder.query('BEGIN');
        await holder.query(
          "SELECT 1 FROM idempotency_records WHERE scope = 'row-locked' AND key = 'k-1' FOR UPDATE",
        );
        expect(await store.purgeExpired(PURGE_BATCH_SIZE)).toBe(19);
        expect(await scopeRows('row-locked')).toBe(1);

        await holder.query('COMMIT');
        expect(await store.purgeExpired(PURGE_BATCH_SIZE)).toBe(1);
        expect(await scopeRows('row-locked')).toBe(0);
      },
      TEST_TIMEOUT_MS,
    );
  });
});

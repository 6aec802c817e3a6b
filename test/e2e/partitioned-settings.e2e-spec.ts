import type { FixtureIdempotencyOptions } from './fixtures/fixture-idempotency';
import pg from 'pg';
import { setTimeout as sleep } from 'node:timers/promises';
import { DataSource } from 'typeorm';
import { type ClaimRequest, IdempotencyPurger, IdempotencyStore } from '../../lib';
import { PostgresIdempotencyStore, createPartitionedIdempotencyTableSql } from '../../lib/postgres';
import { IdempotencyPartitions } from '../../lib/postgres/layout/idempotency-partitions';
import { FixtureAppModule } from './fixtures/fixture-app.module';
import { LedgerFixtureModule } from './fixtures/ledger-app.module';
import {
  ADAPTERS,
  type AdapterName,
  type TestApp,
  createTestApp,
  expectStartFailure,
} from '../utils/test-app';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';

const TABLE = 'partitioned_records';
const TEST_TIMEOUT_MS = 30_000;
const TIMESTAMPTZ_OID = 1184;
/** The tests run the passes themselves; a timed purge comes after half an hour at the soonest. */
const PARTITIONED: FixtureIdempotencyOptions = {
  tableName: TABLE,
  partitioning: { maintenanceIntervalMs: 0 },
  purgeIntervalMs: 3_600_000,
};

async function partitionedDatabase(...settings: string[]): Promise<TestDatabase> {
  const db = await createTestDatabase();
  const [{ name }] = await db.query<{ name: string }>('SELECT current_database() AS name');
  for (const setting of settings) {
    await db.query(`ALTER DATABASE ${name} SET ${setting}`);
  }
  await db.query(createPartitionedIdempotencyTableSql(TABLE));
  return db;
}

/** Starts the fixture app expecting its start-up to fail. */
function startFails(
  adapter: AdapterName,
  db: TestDatabase,
  message: RegExp,
  idempotency: FixtureIdempotencyOptions = PARTITIONED,
): Promise<void> {
  return expectStartFailure(
    adapter,
    FixtureAppModule.register({ databaseUrl: db.url, idempotency }),
    message,
  );
}

describe.each(ADAPTERS)('partitioned table under other settings (%s)', (adapter) => {
  const executions = async (db: TestDatabase, route: string, key: string) =>
    Number(
      (
        await db.query<{ n: string }>(
          'SELECT count(*) AS n FROM executions WHERE route = $1 AND idem_key = $2',
          [route, key],
        )
      )[0].n,
    );

  it(
    "keeps working whatever the application's timestamptz parser, DateStyle and TimeZone",
    async () => {
      const db = await partitionedDatabase("DateStyle = 'SQL, DMY'", "TimeZone = 'Asia/Kolkata'");
      // Applications that keep microseconds read timestamptz as text.
      const original = pg.types.getTypeParser(TIMESTAMPTZ_OID);
      pg.types.setTypeParser(TIMESTAMPTZ_OID, (value: string) => value);
      let app: TestApp | undefined;
      try {
        app = await createTestApp(
          adapter,
          FixtureAppModule.register({ databaseUrl: db.url, idempotency: PARTITIONED }),
        );
        const order = () => app!.http().post('/orders').set('Idempotency-Key', 'k').send({ a: 1 });
        const first = await order();
        const replay = await order();
        expect(first.status).toBe(201);
        expect(replay.headers['idempotent-replayed']).toBe('true');
        expect(replay.text).toBe(first.text);
        // A route answering with @Res() is marked twice: the second mark finds the moved row.
        const raw = () => app!.http().post('/orders/raw').set('Idempotency-Key', 'r').send({});
        expect((await raw()).status).toBe(201);
        expect((await raw()).status).toBe(410);
        expect(await executions(db, 'create', 'k')).toBe(1);
        expect(await executions(db, 'raw', 'r')).toBe(1);
        expect(await db.query(`SELECT key, state FROM ${TABLE} ORDER BY key`)).toEqual([
          { key: 'k', state: 'completed' },
          { key: 'r', state: 'not_replayable' },
        ]);
        // Partition bounds are read back from text: later passes and a second instance must
        // find the partitions the first one made (PostgreSQL before 18 misread IST as +02).
        const [store, purger] = [app.app.get(IdempotencyStore), app.app.get(IdempotencyPurger)];
        for (let pass = 0; pass < 2; pass++) {
          await store.maintain();
          await purger.purgeNow();
        }
        const second = await createTestApp(
          adapter,
          FixtureAppModule.register({ databaseUrl: db.url, idempotency: PARTITIONED }),
        );
        await second.close();
        expect(
          await db.query(
            `SELECT count(*)::int AS n FROM pg_inherits WHERE inhparent = $1::regclass`,
            [TABLE],
          ),
        ).toEqual([{ n: 4 }]);
      } finally {
        pg.types.setTypeParser(TIMESTAMPTZ_OID, original);
        await app?.close();
        await db.drop();
      }
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'refuses transactional routes under a stricter database default, and keeps lease routes exact',
    async () => {
      const db = await partitionedDatabase("default_transaction_isolation = 'serializable'");
      const orders = await createTestApp(
        adapter,
        FixtureAppModule.register({ databaseUrl: db.url, idempotency: PARTITIONED }),
      );
      const ledger = await createTestApp(
        adapter,
        LedgerFixtureModule.register({ databaseUrl: db.url, idempotency: PARTITIONED }),
      );
      try {
        const refused = await ledger
          .http()
          .post('/ledger/entries')
          .set('Idempotency-Key', 'tx')
          .send({ amount: 1 });
        expect(refused.status).toBe(503);
        expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/);
        expect(await executions(db, 'entries', 'tx')).toBe(0);

        // Lease-mode writes open their own READ COMMITTED transactions here.
        const keys = Array.from({ length: 10 }, (_, i) => `lease-${i}`);
        await Promise.all(
          keys.flatMap((key) =>
            Array.from({ length: 4 }, () =>
              orders.http().post('/orders').set('Idempotency-Key', key).send({ a: 1 }),
            ),
          ),
        );
        for (const key of keys) {
          expect(await executions(db, 'create', key)).toBe(1);
        }
      } finally {
        await Promise.all([orders.close(), ledger.close()]);
        await db.drop();
      }
    },
    TEST_TIMEOUT_MS,
  );

  it('refuses to start on a table partitioned by another key, or with a DEFAULT partition', async () => {
    const db = await createTestDatabase();
    try {
      await db.query(
        createPartitionedIdempotencyTableSql(TABLE)
          .replace('PRIMARY KEY (scope, key, expires_at)', 'PRIMARY KEY (scope, key, created_at)')
          .replace('PARTITION BY RANGE (expires_at)', 'PARTITION BY RANGE (created_at)'),
      );
      await startFails(adapter, db, /partitioned by RANGE \(created_at\), not by RANGE/);
      await db.query(`DROP TABLE ${TABLE}`);
      await db.query(createPartitionedIdempotencyTableSql(TABLE));
      await db.query(`CREATE TABLE ${TABLE}_default PARTITION OF ${TABLE} DEFAULT`);
      await startFails(adapter, db, /has a DEFAULT partition/);
      // And the ordinary layout on a partitioned table (partitioning forgotten).
      await startFails(adapter, db, /is partitioned; set the partitioning option/, {
        tableName: TABLE,
      });
    } finally {
      await db.drop();
    }
  });
});

describe('partitioned store writes', () => {
  let db: TestDatabase;
  let app: TestApp;
  let store: IdempotencyStore;
  const request = (key: string, lockTimeoutMs: number, ttlMs: number): ClaimRequest => ({
    scope: 'writes',
    key,
    fingerprint: null,
    lockTimeoutMs,
    ttlMs,
  });
  const liveRows = async (key: string) =>
    db.query<{ lock_token: string }>(
      `SELECT lock_token FROM ${TABLE} WHERE key = $1 AND expires_at > now()`,
      [key],
    );

  beforeAll(async () => {
    db = await partitionedDatabase();
    app = await createTestApp(
      'express',
      FixtureAppModule.register({ databaseUrl: db.url, idempotency: PARTITIONED }),
    );
    store = app.app.get(IdempotencyStore);
  }, TEST_TIMEOUT_MS);

  afterAll(async () => {
    await app?.close();
    await db?.drop();
  });

  it("releases the claim's row after a mark that landed late moved it", async () => {
    const claimed = await store.claim(request('moved', 60_000, 1000));
    if (claimed.kind !== 'claimed') throw new Error(claimed.kind);
    // What the interceptor still holds when it releases after a mark that timed out.
    const stale = { ...claimed.handle };
    expect(await store.markNotReplayable(claimed.handle, null, 86_400_000)).toBe(true);
    expect(claimed.handle.location).not.toBe(stale.location);
    expect(await store.release(stale)).toBe(true);
    expect(await liveRows('moved')).toEqual([]);
  });

  it('keeps the row-by-row purge of the ordinary layout off a partitioned table', async () => {
    const response = { status: 201, headers: {}, body: Buffer.from('{}') };
    for (const key of ['purge-a', 'purge-b', 'purge-c']) {
      const claimed = await store.claim(request(key, 60_000, 3_600_000));
      if (claimed.kind !== 'claimed') throw new Error(claimed.kind);
      expect(await store.complete(claimed.handle, response, 3_600_000)).toBe(true);
    }
    // Expired rows the current partition can hold: partitions start at the current day's UTC
    // midnight, so a minute ago is out of range in the first minute of a day.
    await db.query(
      `INSERT INTO ${TABLE} (scope, key, state, lock_token, expires_at)
       SELECT 'writes', 'expired-' || i, 'completed', gen_random_uuid(),
              GREATEST(now() - interval '1 minute', date_trunc('day', now(), 'UTC'))
         FROM generate_series(1, 50) i`,
    );
    const live = async () =>
      Number(
        (
          await db.query<{ n: string }>(
            `SELECT count(*) AS n FROM ${TABLE} WHERE expires_at > now()`,
          )
        )[0].n,
      );
    const before = await live();
    const ordinary = new PostgresIdempotencyStore(app.app.get(DataSource), TABLE);
    expect(await ordinary.purgeExpired(1000)).toBe(0);
    expect(await live()).toBe(before);
  });

  it("leaves the application's own session settings on the connections it maintains", async () => {
    const pool = new pg.Pool({ connectionString: db.url, max: 1 });
    pool.on('connect', (client) => void client.query("SET TimeZone = 'Europe/Paris'"));
    try {
      const partitions = new IdempotencyPartitions(() => pool, TABLE, {
        partitionMs: 86_400_000,
        aheadMs: 3 * 86_400_000,
        claimReachMs: 86_400_000 + 60_000,
        maintenanceIntervalMs: 60_000,
        detachTimeoutMs: 1000,
      });
      await partitions.createAhead();
      await partitions.dropExpired();
      const [{ TimeZone }] = (await pool.query<{ TimeZone: string }>('SHOW TimeZone')).rows;
      expect(TimeZone).toBe('Europe/Paris');
    } finally {
      await pool.end();
    }
  });

  it('does not revive a claim that expired and was replaced, when its completion comes late', async () => {
    const first = await store.claim(request('late', 100, 200));
    if (first.kind !== 'claimed') throw new Error(first.kind);
    await sleep(400);
    const second = await store.claim(request('late', 100, 200));
    if (second.kind !== 'claimed') throw new Error(second.kind);
    const response = { status: 201, headers: {}, body: Buffer.from('{}') };
    expect(await store.complete(first.handle, response, 60_000)).toBe(false);
    expect(await store.markNotReplayable(first.handle, 201, 60_000)).toBe(false);
    expect(await liveRows('late')).toEqual([{ lock_token: second.handle.token }]);
    expect(await store.complete(second.handle, response, 60_000)).toBe(true);
  });
});

import type { FixtureIdempotencyOptions } from './fixtures/fixture-idempotency';
import { IdempotencyPurger, IdempotencyStore } from '../../lib';
import { createPartitionedIdempotencyTableSql } from '../../lib/postgres';
import { FixtureAppModule } from './fixtures/fixture-app.module';
import { CLIENT_ERROR_STATUS, handlerRuns } from './fixtures/ledger.controller';
import { LedgerFixtureModule } from './fixtures/ledger-app.module';
import { ADAPTERS, type TestApp, createTestApp, expectStartFailure } from '../utils/test-app';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';
import { waitFor } from '../utils/wait-for';

const TABLE = 'partitioned_records';
const DAY_MS = 86_400_000;
const TEST_TIMEOUT_MS = 30_000;
/** The first timed purge comes after half an interval at least: tests run the passes themselves. */
const NO_PASS_DURING_TESTS_MS = 3_600_000;
/**
 * Small partitions and a short TTL, so that partitions expire while a test waits. The tests create
 * partitions themselves too (maintenance every 0 ms: never on its own).
 */
const SHORT: FixtureIdempotencyOptions = {
  tableName: 'short_records',
  ttlMs: 1000,
  lockTimeoutMs: 2000,
  partitioning: { partitionMs: 1000, aheadMs: 8000, maintenanceIntervalMs: 0 },
  purgeIntervalMs: NO_PASS_DURING_TESTS_MS,
};

describe.each(ADAPTERS)('partitioned idempotency table (%s)', (adapter) => {
  let db: TestDatabase;
  let orders: TestApp;
  let ledger: TestApp;
  let short: TestApp;

  beforeAll(async () => {
    db = await createTestDatabase();
    await db.query(createPartitionedIdempotencyTableSql(TABLE));
    await db.query(createPartitionedIdempotencyTableSql(SHORT.tableName));
    const idempotency = {
      tableName: TABLE,
      partitioning: {},
      purgeIntervalMs: NO_PASS_DURING_TESTS_MS,
    };
    orders = await createTestApp(
      adapter,
      FixtureAppModule.register({ databaseUrl: db.url, idempotency }),
    );
    ledger = await createTestApp(
      adapter,
      LedgerFixtureModule.register({ databaseUrl: db.url, idempotency, poolSize: 20 }),
    );
    short = await createTestApp(
      adapter,
      FixtureAppModule.register({ databaseUrl: db.url, idempotency: SHORT }),
    );
  }, TEST_TIMEOUT_MS);

  afterAll(async () => {
    await Promise.all([orders?.close(), ledger?.close(), short?.close()]);
    await db?.drop();
  });

  const count = async (sql: string, values: unknown[] = []) =>
    Number((await db.query<{ n: string }>(sql, values))[0].n);
  const executions = (route: string, key: string) =>
    count('SELECT count(*) AS n FROM executions WHERE route = $1 AND idem_key = $2', [route, key]);
  const liveRows = (table: string, key: string) =>
    count(`SELECT count(*) AS n FROM ${table} WHERE key = $1 AND expires_at > now()`, [key]);
  const rows = (table: string, key: string) =>
    count(`SELECT count(*) AS n FROM ${table} WHERE key = $1`, [key]);
  const partitions = (table: string) =>
    db.query<{ name: string; upper: Date }>(
      `SELECT c.relname AS name,
              (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)'))[1]::timestamptz AS upper
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = $1::regclass
        ORDER BY upper`,
      [table],
    );
  const order = (app: TestApp, key: string, body: object = { item: 'a' }) =>
    app.http().post('/orders').set('Idempotency-Key', key).send(body);

  it('creates daily partitions from today to three days ahead at start-up', async () => {
    const created = await partitions(TABLE);
    const [{ now }] = await db.query<{ now: Date }>('SELECT now()');
    expect(created).toHaveLength(4);
    expect(created[0].upper.getTime()).toBeGreaterThan(now.getTime());
    expect(created[3].upper.getTime()).toBeGreaterThanOrEqual(now.getTime() + 3 * DAY_MS);
    for (const [i, partition] of created.entries()) {
      expect(partition.upper.getTime() % DAY_MS).toBe(0);
      if (i > 0) {
        expect(partition.upper.getTime() - created[i - 1].upper.getTime()).toBe(DAY_MS);
      }
    }
  });

  it(
    'runs a key once under 40 parallel duplicates, keeps one row for it, and replays it',
    async () => {
      const key = `parallel-${adapter}`;
      const responses = await Promise.all(
        Array.from({ length: 40 }, () => order(orders, key).query({ delayMs: 200 })),
      );
      const statuses = responses.map((response) => response.status);
      expect(statuses.every((status) => status === 201 || status === 409)).toBe(true);
      expect(await executions('create', key)).toBe(1);
      expect(await rows(TABLE, key)).toBe(1);

      const first = responses.find(
        (response) => response.status === 201 && !response.headers['idempotent-replayed'],
      );
      const replay = await order(orders, key).query({ delayMs: 200 });
      expect(replay.status).toBe(201);
      expect(replay.headers['idempotent-replayed']).toBe('true');
      expect(replay.body).toEqual(first?.body);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'runs 20 keys once each under 5 parallel duplicates of each',
    async () => {
      const keys = Array.from({ length: 20 }, (_, i) => `many-${adapter}-${i}`);
      await Promise.all(keys.flatMap((key) => Array.from({ length: 5 }, () => order(orders, key))));
      for (const key of keys) {
        expect(await executions('create', key)).toBe(1);
        expect(await rows(TABLE, key)).toBe(1);
      }
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "keeps the lock to the write's commit with pool clients in node-postgres's pipeline mode",
    async () => {
      // Each statement then has its own Sync: the lock and the write must not rely on sharing one.
      const pipelined = await createTestApp(
        adapter,
        FixtureAppModule.register({
          databaseUrl: db.url,
          pgPipelineMode: true,
          idempotency: {
            tableName: TABLE,
            partitioning: {},
            purgeIntervalMs: NO_PASS_DURING_TESTS_MS,
          },
        }),
      );
      try {
        const keys = Array.from({ length: 20 }, (_, i) => `pipelined-${adapter}-${i}`);
        await Promise.all(
          keys.flatMap((key) => Array.from({ length: 5 }, () => order(pipelined, key))),
        );
        for (const key of keys) {
          expect(await executions('create', key)).toBe(1);
          expect(await rows(TABLE, key)).toBe(1);
        }
      } finally {
        await pipelined.close();
      }
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'commits one transactional execution under 30 parallel duplicates, and replays it to all',
    async () => {
      const key = `ledger-${adapter}`;
      const responses = await Promise.all(
        Array.from({ length: 30 }, () =>
          ledger
            .http()
            .post('/ledger/entries')
            .set('Idempotency-Key', key)
            .set('X-Delay-Ms', '100')
            .send({ amount: 5 }),
        ),
      );
      // Transactional routes wait for the holder by default: every duplicate gets the answer.
      expect(responses.map((response) => response.status)).toEqual(Array(30).fill(201));
      expect(new Set(responses.map((response) => response.text)).size).toBe(1);
      expect(await executions('entries', key)).toBe(1);
      expect(await rows(TABLE, key)).toBe(1);
    },
    TEST_TIMEOUT_MS,
  );

  it('rolls back a transactional execution that failed, so its retry runs again', async () => {
    const key = `ledger-fail-${adapter}`;
    const send = (fail?: string) => {
      const request = ledger.http().post('/ledger/entries').set('Idempotency-Key', key);
      return (fail ? request.set('X-Fail', fail) : request).send({ amount: 5 });
    };
    expect((await send('error')).status).toBe(500);
    expect(await executions('entries', key)).toBe(0);
    expect(await rows(TABLE, key)).toBe(0);
    expect((await send()).status).toBe(201);
    expect(await executions('entries', key)).toBe(1);
  });

  it('stores a client error without its writes (rollbackOnClientError), once', async () => {
    const key = `ledger-declined-${adapter}`;
    const send = () =>
      ledger.http().post('/ledger/client-error-rollback').set('Idempotency-Key', key).send({});
    const first = await send();
    const again = await send();
    expect(first.status).toBe(CLIENT_ERROR_STATUS);
    expect(again.status).toBe(CLIENT_ERROR_STATUS);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.text).toBe(first.text);
    expect(handlerRuns.get(key)).toBe(1);
    expect(await executions('client-error-rollback', key)).toBe(0);
    expect(await rows(TABLE, key)).toBe(1);
  });

  it('answers 410 to retries of a route that writes its own response, which ran once', async () => {
    const key = `raw-${adapter}`;
    const first = await orders.http().post('/orders/raw').set('Idempotency-Key', key).send({});
    const retry = await orders.http().post('/orders/raw').set('Idempotency-Key', key).send({});
    expect(first.status).toBe(201);
    expect(retry.status).toBe(410);
    expect(await executions('raw', key)).toBe(1);
    // Marked twice (before the handler, and with its status): the second write found the row.
    const [record] = await db.query<{ state: string; response_status: number }>(
      `SELECT state, response_status FROM ${TABLE} WHERE key = $1`,
      [key],
    );
    expect(record).toEqual({ state: 'not_replayable', response_status: 201 });
  });

  it(
    'lets a retry take an expired lease over, and fences off the late completion',
    async () => {
      const key = `takeover-${adapter}`;
      const send = (delayMs: number) =>
        orders
          .http()
          .post('/orders/short-lease')
          .set('Idempotency-Key', key)
          .set('X-Delay-Ms', String(delayMs))
          .send({ same: 'request' });
      // supertest sends on then(): start the slow execution now.
      const slow = send(2500).then((response) => response);
      await waitFor(async () => (await rows(TABLE, key)) === 1);
      expect((await send(0)).status).toBe(409);
      await waitFor(
        async () =>
          (await count(
            `SELECT count(*) AS n FROM ${TABLE} WHERE key = $1 AND locked_until <= now()`,
            [key],
          )) === 1,
        10_000,
      );
      const takeover = await send(0);
      expect(takeover.status).toBe(201);
      const late = await slow;
      expect(late.status).toBe(201);
      const replay = await send(0);
      expect(replay.headers['idempotent-replayed']).toBe('true');
      expect(replay.text).toBe(takeover.text);
      expect(await executions('short-lease', key)).toBe(2);
      expect(await rows(TABLE, key)).toBe(1);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'runs an expired key again into a new row, and drops the expired partitions',
    async () => {
      const key = `expired-${adapter}`;
      // Partitions reach 8 s ahead of the last maintenance, and earlier tests took time.
      await short.app.get(IdempotencyStore).maintain();
      const first = await order(short, key);
      expect(first.status).toBe(201);
      await waitFor(async () => (await liveRows(SHORT.tableName!, key)) === 0, 10_000);
      const again = await order(short, key);
      expect(again.status).toBe(201);
      expect(again.headers['idempotent-replayed']).toBeUndefined();
      expect(await executions('create', key)).toBe(2);
      // The expired row stays in its partition until the partition is dropped.
      expect(await rows(SHORT.tableName!, key)).toBe(2);
      // The new row must outlive the wait for the old partition below, which a 1 s TTL on a busy
      // machine does not promise: it moves a few seconds ahead, to a partition that exists.
      await db.query(
        `UPDATE ${SHORT.tableName} SET expires_at = now() + interval '5 seconds'
          WHERE key = $1 AND expires_at > now()`,
        [key],
      );

      const [{ upper }] = await db.query<{ upper: Date }>(
        `SELECT expires_at AS upper FROM ${SHORT.tableName} WHERE key = $1 ORDER BY expires_at LIMIT 1`,
        [key],
      );
      // Once the old row's partition lies wholly in the past, a purge pass drops it.
      await waitFor(async () => {
        const [{ past }] = await db.query<{ past: boolean }>(
          `SELECT date_trunc('second', $1::timestamptz) + interval '1 second' <= now() AS past`,
          [upper],
        );
        return past;
      }, 10_000);
      const before = (await partitions(SHORT.tableName!)).map((p) => p.name);
      await short.app.get(IdempotencyStore).maintain();
      await short.app.get(IdempotencyPurger).purgeNow();
      const after = (await partitions(SHORT.tableName!)).map((p) => p.name);
      expect(after).not.toEqual(before);
      expect(after.length).toBeGreaterThanOrEqual(8);
      expect(await rows(SHORT.tableName!, key)).toBe(1);

      const replay = await order(short, key);
      expect(replay.headers['idempotent-replayed']).toBe('true');
      expect(replay.text).toBe(again.text);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'answers 503 without running the handler when no partition covers the expiry',
    async () => {
      const key = `no-room-${adapter}`;
      await short.app.get(IdempotencyStore).maintain();
      // Drop every partition whose range starts after the next 2 s: a claim expires 3 s ahead.
      for (const { name } of await db.query<{ name: string }>(
        `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = $1::regclass
            AND (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz
                > now() + interval '2 seconds'`,
        [SHORT.tableName],
      )) {
        await db.query(`DROP TABLE ${name}`);
      }
      const refused = await order(short, key);
      expect(refused.status).toBe(503);
      expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(await executions('create', key)).toBe(0);

      // The next maintenance creates them again, and the key runs.
      await short.app.get(IdempotencyStore).maintain();
      expect((await order(short, key)).status).toBe(201);
      expect(await executions('create', key)).toBe(1);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'lets instances that start together on a new table each serve at once',
    async () => {
      const table = 'together_records';
      await db.query(createPartitionedIdempotencyTableSql(table));
      const idempotency = {
        tableName: table,
        partitioning: {},
        purgeIntervalMs: NO_PASS_DURING_TESTS_MS,
      };
      const instances = await Promise.all(
        Array.from({ length: 3 }, () =>
          createTestApp(adapter, FixtureAppModule.register({ databaseUrl: db.url, idempotency })),
        ),
      );
      try {
        const answers = await Promise.all(
          instances.map((instance, i) => order(instance, `together-${adapter}-${i}`)),
        );
        expect(answers.map((answer) => answer.status)).toEqual([201, 201, 201]);
        expect(await partitions(table)).toHaveLength(4);
      } finally {
        await Promise.all(instances.map((instance) => instance.close()));
      }
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'keeps creating partitions ahead on its own maintenance interval, with the purge off',
    async () => {
      const table = `maintained_records_${adapter}`;
      await db.query(createPartitionedIdempotencyTableSql(table));
      const maintained = await createTestApp(
        adapter,
        FixtureAppModule.register({
          databaseUrl: db.url,
          idempotency: {
            tableName: table,
            ttlMs: 1000,
            lockTimeoutMs: 2000,
            partitioning: { partitionMs: 1000, aheadMs: 8000, maintenanceIntervalMs: 500 },
            purgeIntervalMs: 0,
          },
        }),
      );
      try {
        const [first] = await partitions(table);
        // Every partition a claim made now would need (it expires 3 s ahead) goes. A maintenance
        // pass may run between two drops: what it creates is a new table, with a new oid.
        const ahead = `SELECT c.oid::int AS oid, c.relname AS name
           FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = $1::regclass
            AND (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz
                > now() + interval '2 seconds'`;
        const dropped = new Set<number>();
        for (const { oid, name } of await db.query<{ oid: number; name: string }>(ahead, [table])) {
          await db.query(`DROP TABLE ${name}`);
          dropped.add(oid);
        }
        expect(dropped.size).toBeGreaterThanOrEqual(5);
        // Only the maintenance creates partitions here (the purge is off, nobody calls it).
        await waitFor(async () => {
          const now = await db.query<{ oid: number }>(ahead, [table]);
          return now.length >= 5 && now.every(({ oid }) => !dropped.has(oid));
        }, 5000);
        const key = `maintained-${adapter}`;
        expect((await order(maintained, key)).status).toBe(201);
        expect(await executions('create', key)).toBe(1);
        // The purge is off: the first partition stays once its range has passed.
        await waitFor(async () => first.upper.getTime() <= Date.now(), 5000);
        expect((await partitions(table)).map((p) => p.name)).toContain(first.name);
      } finally {
        await maintained.close();
      }
    },
    TEST_TIMEOUT_MS,
  );

  it('refuses to start with partitioning on an ordinary table', async () => {
    await expectStartFailure(
      adapter,
      FixtureAppModule.register({
        databaseUrl: db.url,
        idempotency: {
          tableName: 'idempotency_records',
          partitioning: {},
          purgeIntervalMs: NO_PASS_DURING_TESTS_MS,
        },
      }),
      /it is an ordinary table/,
    );
  });
});

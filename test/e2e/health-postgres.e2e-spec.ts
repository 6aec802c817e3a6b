import pg from 'pg';
import { IdempotencyMaintenance } from '../../lib';
import type { IdempotencyHealthDetails } from '../../lib/health';
import { createInFlightIndexSql, createPartitionedIdempotencyTableSql } from '../../lib/postgres';
import { oldestInFlightSql } from '../../lib/postgres/sql/health.sql';
import { PgPoolIdempotencyStore } from '../../lib/postgres/pool';
import { FixtureAppModule } from './fixtures/fixture-app.module';
import { HealthFixtureModule, type HealthOptionsHolder } from './fixtures/health-app.module';
import { TcpProxy } from '../utils/tcp-proxy';
import { ADAPTERS, type TestApp, createTestApp } from '../utils/test-app';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';
import { waitFor } from '../utils/wait-for';

/*
 * GET /health over the PostgreSQL store: what it reports on a healthy ordinary table, the purge
 * backlog and the oldest in-flight age as rows come and go, reads cut off by the detail timeout,
 * 503 within the timeout when the database is unreachable or frozen, and on a partitioned table
 * the partitions ahead and those waiting to be dropped.
 */

const TEST_TIMEOUT_MS = 60_000;
const TIMEOUT_MS = 1000;
/** How late a 503 may come: the timeout, plus slack for a busy machine. */
const DOWN_WITHIN_MS = TIMEOUT_MS + 1500;
const PARTITIONED = 'partitioned_health';
const HOUR_MS = 3_600_000;

interface HealthBody {
  status: 'ok' | 'error' | 'degraded';
  details: { idempotency: { status: string } & IdempotencyHealthDetails };
}

describe.each(ADAPTERS)('health indicator on PostgreSQL (%s)', (adapter) => {
  let db: TestDatabase;
  let proxy: TcpProxy;
  let app: TestApp;
  let partitioned: TestApp;
  const options: HealthOptionsHolder = { current: {} };

  beforeAll(async () => {
    db = await createTestDatabase();
    await db.query(createPartitionedIdempotencyTableSql(PARTITIONED));
    proxy = await TcpProxy.forUrl(db.url);
    app = await createTestApp(
      adapter,
      HealthFixtureModule.register(
        FixtureAppModule.register({ databaseUrl: proxy.via(db.url) }),
        options,
      ),
    );
    partitioned = await createTestApp(
      adapter,
      HealthFixtureModule.register(
        FixtureAppModule.register({
          databaseUrl: db.url,
          idempotency: {
            tableName: PARTITIONED,
            ttlMs: 60_000,
            lockTimeoutMs: 60_000,
            // Hourly partitions, three hours ahead; none made after start-up unless asked.
            partitioning: { partitionMs: HOUR_MS, aheadMs: 3 * HOUR_MS, maintenanceIntervalMs: 0 },
          },
        }),
      ),
    );
  }, TEST_TIMEOUT_MS);

  beforeEach(async () => {
    options.current = {};
    await db.query('DELETE FROM idempotency_records');
  });

  afterEach(() => proxy.restore());

  afterAll(async () => {
    await Promise.all([app?.close(), partitioned?.close()]);
    await proxy?.close();
    await db?.drop();
  }, TEST_TIMEOUT_MS);

  const health = async (on: TestApp = app) => {
    const started = Date.now();
    const response = await on.http().get('/health');
    return {
      status: response.status,
      body: response.body as HealthBody,
      store: (response.body as HealthBody).details.idempotency.store,
      elapsedMs: Date.now() - started,
    };
  };
  const insertRow = (key: string, state: string, createdAgo: string, expiresIn: string) =>
    db.query(
      `INSERT INTO idempotency_records (scope, key, state, lock_token, locked_until, created_at, expires_at)
       VALUES ('', $1, $2, gen_random_uuid(), now() + interval '1 minute',
               now() - $3::interval, now() + $4::interval)`,
      [key, state, createdAgo, expiresIn],
    );

  it('answers 200 with the store up, its answer time and an empty purge backlog', async () => {
    const { status, body, store } = await health();
    expect(status).toBe(200);
    expect(body.status).toBe('ok');
    expect(body.details.idempotency.status).toBe('up');
    expect(Object.keys(body.details.idempotency).sort()).toEqual(['status', 'store']);
    expect(store).toEqual({
      status: 'up',
      kind: 'postgres',
      responseMs: expect.any(Number),
      purgeBacklog: 0,
      purgeBacklogCapped: false,
    });
    expect(store.responseMs).toBeLessThan(TIMEOUT_MS);
  });

  it('counts the expired rows waiting for the purge, up to the limit', async () => {
    for (const key of ['e1', 'e2', 'e3']) {
      await insertRow(key, 'completed', '2 days', '-1 hour');
    }
    await insertRow('live', 'completed', '1 minute', '1 hour');
    expect((await health()).store).toMatchObject({ purgeBacklog: 3, purgeBacklogCapped: false });

    options.current = { purgeBacklogLimit: 2 };
    expect((await health()).store).toMatchObject({ purgeBacklog: 2, purgeBacklogCapped: true });

    options.current = { maxPurgeBacklog: 2 };
    const degraded = await health();
    expect(degraded.status).toBe(200);
    expect(degraded.body.status).toBe('degraded');
    expect(degraded.store).toMatchObject({
      status: 'degraded',
      purgeBacklog: 3,
      exceeded: ['3 expired keys wait for the purge, above 2.'],
    });

    options.current = { maxPurgeBacklog: 2, whenExceeded: 'down' };
    const down = await health();
    expect(down.status).toBe(503);
    expect(down.store.status).toBe('down');
  });

  it('reports the age of the oldest key in flight when asked, for a claim under way', async () => {
    expect((await health()).store.oldestInFlightAgeMs).toBeUndefined();
    options.current = { oldestInFlight: true };
    expect((await health()).store.oldestInFlightAgeMs).toBeNull();

    // Long enough that the check lands while the claim is held, even on a loaded machine.
    const slow = app.http().post('/orders?delayMs=5000').set('Idempotency-Key', 'slow').send({});
    const pending = slow.then((response) => response.status);
    await waitFor(
      async () =>
        (await db.query("SELECT 1 FROM idempotency_records WHERE key = 'slow'")).length === 1,
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    const during = (await health()).store.oldestInFlightAgeMs as number;
    expect(during).toBeGreaterThanOrEqual(250);
    expect(during).toBeLessThan(5000);
    expect(await pending).toBe(201);
    expect((await health()).store.oldestInFlightAgeMs).toBeNull();

    // An abandoned claim, and an expired one that no longer counts.
    await insertRow('abandoned', 'in_flight', '90 seconds', '1 hour');
    await insertRow('expired', 'in_flight', '3 days', '-1 hour');
    const age = (await health()).store.oldestInFlightAgeMs as number;
    expect(age).toBeGreaterThanOrEqual(90_000);
    expect(age).toBeLessThan(95_000);

    options.current = { maxOldestInFlightAgeMs: 60_000, whenExceeded: 'down' };
    const down = await health();
    expect(down.status).toBe(503);
    expect(down.store).toMatchObject({
      status: 'down',
      exceeded: [
        expect.stringMatching(/^The oldest key in flight is \d+ ms old, above 60000 ms\.$/),
      ],
    });
  });

  it('reports a read cut off by the detail timeout as unknown, and stays up', async () => {
    options.current = { oldestInFlight: true, detailTimeoutMs: 100 };
    const locker = new pg.Client({ connectionString: db.url });
    await locker.connect();
    try {
      // A migration holding the table: every read of it waits, and is cancelled.
      await locker.query('BEGIN; LOCK TABLE idempotency_records IN ACCESS EXCLUSIVE MODE');
      const { status, store, elapsedMs } = await health();
      expect(status).toBe(200);
      expect(store).toMatchObject({
        status: 'up',
        purgeBacklog: 'unknown',
        oldestInFlightAgeMs: 'unknown',
      });
      expect(store.purgeBacklogCapped).toBeUndefined();
      expect(elapsedMs).toBeLessThan(TIMEOUT_MS);
    } finally {
      await locker.query('ROLLBACK');
      await locker.end();
    }
    expect((await health()).store).toMatchObject({ purgeBacklog: 0, oldestInFlightAgeMs: null });
  });

  it('reads the in-flight age through the optional partial index once it exists', async () => {
    await db.query(createInFlightIndexSql());
    try {
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      try {
        // Small tables are scanned whatever the indexes: this shows the index serves the read.
        await client.query('SET enable_seqscan = off');
        const { rows } = await client.query<{ 'QUERY PLAN': string }>(
          `EXPLAIN ${oldestInFlightSql('idempotency_records')}`,
        );
        expect(rows.map((row) => row['QUERY PLAN']).join('\n')).toMatch(
          /Index (Only )?Scan.* using idempotency_records_in_flight_idx/,
        );
      } finally {
        await client.end();
      }
      await insertRow('indexed', 'in_flight', '30 seconds', '1 hour');
      options.current = { oldestInFlight: true };
      const age = (await health()).store.oldestInFlightAgeMs as number;
      expect(age).toBeGreaterThanOrEqual(30_000);
      expect(age).toBeLessThan(35_000);
    } finally {
      await db.query('DROP INDEX idempotency_records_in_flight_idx');
    }
  });

  it.each([
    // The driver's message (hosts, ports) stays in the log: the endpoint may be public.
    [
      'unreachable',
      (p: TcpProxy) => p.cut(),
      /^The idempotency store failed \(Error\); the error is in/,
    ],
    ['frozen', (p: TcpProxy) => p.stall(), /did not answer within 1000 ms/],
  ])(
    'answers 503 within the timeout while the database is %s, and 200 once it is back',
    async (_state, fail, error) => {
      fail(proxy);
      const { status, body, store, elapsedMs } = await health();
      expect(status).toBe(503);
      expect(body.status).toBe('error');
      expect(store).toEqual({ status: 'down', error: expect.stringMatching(error) });
      expect(elapsedMs).toBeLessThan(DOWN_WITHIN_MS);
      proxy.restore();
      await waitFor(async () => (await health()).status === 200, 20_000, 200);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'gives up the connection of a check a frozen server never answers',
    async () => {
      const pool = new pg.Pool({ connectionString: proxy.via(db.url), max: 1 });
      pool.on('error', () => undefined);
      try {
        const store = new PgPoolIdempotencyStore(pool);
        const query = { detailTimeoutMs: 100, purgeBacklogLimit: 10, oldestInFlight: false };
        await store.health(query);
        expect(pool.idleCount).toBe(1);
        proxy.stall();
        const started = Date.now();
        const settled = await Promise.race([
          store.health(query).then(
            () => 'answered',
            (error: Error) => error.message,
          ),
          new Promise((resolve) => setTimeout(() => resolve('still waiting'), 10_000)),
        ]);
        // Five statements of at most 100 ms each, and a second of slack.
        expect(settled).toMatch(/unanswered for 1500 ms/);
        expect(Date.now() - started).toBeLessThan(1500 + DOWN_WITHIN_MS);
        // The destroyed connection left the pool, which is whole again.
        expect(pool.totalCount).toBe(0);

        // A caller that waits longer than the statements may take keeps the check that long.
        proxy.restore();
        await store.health(query);
        proxy.stall();
        const patient = Date.now();
        await expect(store.health({ ...query, timeoutMs: 2_500 })).rejects.toThrow(
          /unanswered for 3500 ms/,
        );
        expect(Date.now() - patient).toBeGreaterThanOrEqual(3_400);
        expect(pool.totalCount).toBe(0);
      } finally {
        proxy.restore();
        await pool.end();
      }
    },
    TEST_TIMEOUT_MS,
  );

  describe('partitioned table', () => {
    /**
     * Partitions of the table that have ended, by their bounds in the catalog. The app created
     * hourly ones from the hour it started: once that hour is over, its partition has ended too.
     */
    const endedPartitions = async () =>
      Number(
        (
          await db.query<{ n: string }>(
            `SELECT count(*) AS n FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = $1::regclass
                AND substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \\(''([^'']+)''\\)')::timestamptz <= now()`,
            [PARTITIONED],
          )
        )[0].n,
      );

    it('reports how far partitions reach, against what claims need', async () => {
      const ended = await endedPartitions();
      const { status, store } = await health(partitioned);
      expect(status).toBe(200);
      expect(store).toMatchObject({
        status: 'up',
        kind: 'postgres',
        purgeBacklog: 0,
        expiredPartitions: ended,
        partitionsNeededAheadMs: 120_000,
      });
      // Created from the current hour to three hours ahead: the last one ends within the hour after.
      expect(store.partitionsAheadMs).toBeGreaterThanOrEqual(3 * HOUR_MS);
      expect(store.partitionsAheadMs).toBeLessThanOrEqual(4 * HOUR_MS);
    });

    it('counts expired partitions and their rows as the purge backlog', async () => {
      const old = `${PARTITIONED}_old`;
      await db.query(`CREATE TABLE ${old} (LIKE ${PARTITIONED} INCLUDING DEFAULTS)`);
      await db.query(
        `ALTER TABLE ${PARTITIONED} ATTACH PARTITION ${old} FOR VALUES FROM ('2001-01-01') TO ('2001-01-02')`,
      );
      try {
        await db.query(
          `INSERT INTO ${PARTITIONED} (scope, key, state, lock_token, expires_at)
           SELECT '', 'old-' || i, 'completed', gen_random_uuid(), '2001-01-01 12:00+00'
             FROM generate_series(1, 5) i`,
        );
        await db.query(`ANALYZE ${old}`);
        const ended = await endedPartitions();
        expect(ended).toBeGreaterThanOrEqual(1);
        expect((await health(partitioned)).store).toMatchObject({
          status: 'up',
          expiredPartitions: ended,
          purgeBacklog: 5,
        });
      } finally {
        await db.query(`DROP TABLE ${old}`);
      }
    });

    it('is down while partitions are missing, and up once maintenance creates them', async () => {
      const names = await db.query<{ name: string }>(
        `SELECT inhrelid::regclass::text AS name FROM pg_inherits WHERE inhparent = $1::regclass`,
        [PARTITIONED],
      );
      for (const { name } of names) {
        await db.query(`ALTER TABLE ${PARTITIONED} DETACH PARTITION ${name}`);
        await db.query(`DROP TABLE ${name}`);
      }
      const down = await health(partitioned);
      expect(down.status).toBe(503);
      expect(down.store).toMatchObject({
        status: 'down',
        partitionsAheadMs: 0,
        partitionsNeededAheadMs: 120_000,
        problems: [
          `Partitions of ${PARTITIONED} reach 0 ms ahead, short of the 120000 ms that claims made now need: those claims fail. Is the maintenance running?`,
        ],
      });

      // The optional in-flight index, on the parent: partitions attached later get it too.
      await db.query(createInFlightIndexSql(PARTITIONED, { partitioned: true }));
      await partitioned.app.get(IdempotencyMaintenance).maintainNow();
      const up = await health(partitioned);
      expect(up.status).toBe(200);
      expect(up.store.partitionsAheadMs).toBeGreaterThanOrEqual(3 * HOUR_MS);
      const unindexed = await db.query(
        `SELECT inhrelid::regclass AS name FROM pg_inherits i
          WHERE inhparent = $1::regclass
            AND NOT EXISTS (SELECT 1 FROM pg_index x WHERE x.indrelid = i.inhrelid AND x.indpred IS NOT NULL)`,
        [PARTITIONED],
      );
      expect(unindexed).toEqual([]);
      await db.query(`DROP INDEX ${PARTITIONED}_in_flight_idx`);
    });
  });
});

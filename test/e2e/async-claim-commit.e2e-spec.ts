import { Controller, type DynamicModule, Headers, Inject, Module, Post } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { IdempotencyModule, Idempotent } from '../../lib';
import {
  type IdempotencyPartitioningOptions,
  createIdempotencyTableSql,
  createPartitionedIdempotencyTableSql,
  pgPoolStore,
} from '../../lib/postgres/pool';
import {
  type EmbeddedDatabase,
  startEmbeddedPostgres,
} from '../../sample-app/database/embedded-postgres';
import { ADAPTERS, type AdapterName, type TestApp, createTestApp } from '../utils/test-app';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';

/*
 * claimCommit: 'asynchronous' on the PostgreSQL store: duplicates of a key still run its handler
 * once, and the claim really commits without waiting for its WAL flush, while the default claim
 * does wait.
 */

const APP_POOL = Symbol('app-pool');

/** A promise and the function that settles it. */
function deferred(): { promise: Promise<void>; settle: () => void } {
  let settle!: () => void;
  const promise = new Promise<void>((resolve) => (settle = resolve));
  return { promise, settle };
}

/**
 * Where a test holds a handler after its claim committed and before it writes anything; `null`
 * lets handlers run through.
 */
let hold: { arrived: () => void; released: Promise<void> } | null = null;

@Controller('orders')
class OrdersController {
  constructor(@Inject(APP_POOL) private readonly pool: pg.Pool) {}

  @Post('asynchronous')
  @Idempotent({ claimCommit: 'asynchronous' })
  asynchronous(@Headers('idempotency-key') key: string) {
    return this.create(key);
  }

  @Post('synchronous')
  @Idempotent()
  synchronous(@Headers('idempotency-key') key: string) {
    return this.create(key);
  }

  private async create(key: string) {
    if (hold) {
      hold.arrived();
      await hold.released;
    } else {
      // Long enough for the duplicates of a burst to find the key in flight.
      await sleep(50);
    }
    await this.pool.query('INSERT INTO orders (key) VALUES ($1)', [key]);
    return { key, receipt: randomBytes(8).toString('hex') };
  }
}

@Module({})
class AsyncClaimAppModule {
  static register(
    pool: pg.Pool,
    table: string,
    partitioning: IdempotencyPartitioningOptions | undefined,
  ): DynamicModule {
    return {
      module: AsyncClaimAppModule,
      imports: [
        IdempotencyModule.forRoot({
          store: pgPoolStore({ pool, tableName: table, partitioning }),
          // No background write may flush the WAL while a test reads its positions.
          purgeIntervalMs: 0,
        }),
      ],
      providers: [{ provide: APP_POOL, useValue: pool }],
      controllers: [OrdersController],
    };
  }
}

const LAYOUTS = ['ordinary', 'partitioned'] as const;
type Layout = (typeof LAYOUTS)[number];

/** Creates the keys' table of `layout` and the business table through `query`. */
async function createTables(
  query: (sql: string) => Promise<unknown>,
  layout: Layout,
): Promise<{ table: string; partitioning: IdempotencyPartitioningOptions | undefined }> {
  const table = `${layout}_keys`;
  await query(
    layout === 'ordinary'
      ? createIdempotencyTableSql(table)
      : createPartitionedIdempotencyTableSql(table),
  );
  await query('CREATE TABLE IF NOT EXISTS orders (key text NOT NULL)');
  return {
    table,
    partitioning: layout === 'ordinary' ? undefined : { partitionMs: 86_400_000 },
  };
}

function poolOn(url: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  // An idle client's error (the database dropped under it at the end) must not end the worker.
  pool.on('error', () => undefined);
  return pool;
}

describe.each(ADAPTERS)("claimCommit: 'asynchronous' (%s)", (adapter: AdapterName) => {
  describe.each(LAYOUTS)('on the %s table', (layout) => {
    let db: TestDatabase;
    let pool: pg.Pool;
    let app: TestApp;

    beforeAll(async () => {
      db = await createTestDatabase();
      const { table, partitioning } = await createTables((sql) => db.query(sql), layout);
      pool = poolOn(db.url);
      app = await createTestApp(adapter, AsyncClaimAppModule.register(pool, table, partitioning));
    });

    afterAll(async () => {
      await app?.close();
      await pool?.end();
      await db?.drop();
    });

    it('runs the handler once under 30 parallel duplicates of one key', async () => {
      const key = `burst-${adapter}-${layout}`;
      const responses = await Promise.all(
        Array.from({ length: 30 }, () =>
          app.http().post('/orders/asynchronous').set('Idempotency-Key', key).send({}),
        ),
      );
      const rows = await db.query<{ n: string }>(
        'SELECT count(*) AS n FROM orders WHERE key = $1',
        [key],
      );
      expect(Number(rows[0].n)).toBe(1);
      // The others were refused while it ran (409), or replayed its answer after.
      const winners = responses.filter((response) => response.status === 201);
      expect(winners.length).toBeGreaterThanOrEqual(1);
      expect(new Set(winners.map((response) => response.text)).size).toBe(1);
      for (const response of responses) {
        expect([201, 409]).toContain(response.status);
      }
      // Completed synchronously: a retry replays the first answer.
      const replay = await app
        .http()
        .post('/orders/asynchronous')
        .set('Idempotency-Key', key)
        .send({});
      expect(replay.status).toBe(201);
      expect(replay.text).toBe(winners[0].text);
    });
  });
});

/*
 * Whether a claim waited for its WAL flush shows in the server's WAL positions while its handler
 * is held, before it writes: after a synchronous commit, everything inserted is flushed; after an
 * asynchronous one, the commit record waits in the WAL buffers for the WAL writer. The server is
 * this file's own, so that no other test's commit flushes the WAL, and set up so that nothing in
 * the background writes any: no autovacuum, wal_level minimal (no standby snapshots), and a WAL
 * writer that flushes at most every 10 s (wal_writer_delay's largest value).
 *
 * Two events may still blur one observation, rarely: the WAL writer's turn falling between the
 * claim and the reading (an asynchronous claim then looks flushed), and a synchronous claim whose
 * WAL ends exactly on a page boundary (the insert position then points past the next page's
 * header, and looks ahead of the flush). Each claim is therefore observed up to three times, and
 * the test asks for one observation of the expected kind: a claim that commits the other way
 * shows the other kind every time.
 */
describe('the commit of an asynchronous claim, on a server of its own', () => {
  let server: EmbeddedDatabase;
  let admin: pg.Pool;

  beforeAll(async () => {
    server = await startEmbeddedPostgres({
      directoryPrefix: 'idem-async-claim-',
      settings: {
        wal_writer_delay: '10000ms',
        wal_level: 'minimal',
        max_wal_senders: '0',
        autovacuum: 'off',
      },
    });
    admin = poolOn(server.url);
  }, 180_000);

  afterAll(async () => {
    await admin?.end();
    await server?.stop();
  });

  describe.each(LAYOUTS)('on the %s table', (layout) => {
    let pool: pg.Pool;
    let app: TestApp;

    beforeAll(async () => {
      const name = `async_claim_${layout}`;
      await admin.query(`CREATE DATABASE ${name}`);
      const url = new URL(server.url);
      url.pathname = `/${name}`;
      pool = poolOn(url.toString());
      const { table, partitioning } = await createTables((sql) => pool.query(sql), layout);
      app = await createTestApp('express', AsyncClaimAppModule.register(pool, table, partitioning));
    });

    afterAll(async () => {
      await app?.close();
      await pool?.end();
    });

    /** Whether the WAL the claim of a request to `path` wrote is still unflushed as it runs. */
    async function claimLeftWalUnflushed(path: string): Promise<boolean> {
      const arrived = deferred();
      const released = deferred();
      hold = { arrived: arrived.settle, released: released.promise };
      const key = `wal-${randomBytes(6).toString('hex')}`;
      const response = app.http().post(path).set('Idempotency-Key', key).send({}).then();
      try {
        await arrived.promise;
        const { rows } = await admin.query<{ unflushed: boolean }>(
          'SELECT pg_current_wal_insert_lsn() > pg_current_wal_flush_lsn() AS unflushed',
        );
        return rows[0].unflushed;
      } finally {
        hold = null;
        released.settle();
        expect((await response).status).toBe(201);
      }
    }

    async function observations(path: string, expected: boolean): Promise<boolean[]> {
      const seen: boolean[] = [];
      while (seen.length < 3 && !seen.includes(expected)) {
        seen.push(await claimLeftWalUnflushed(path));
      }
      return seen;
    }

    it('leaves the WAL of an asynchronous claim unflushed while the handler runs', async () => {
      expect(await observations('/orders/asynchronous', true)).toContain(true);
    });

    it('flushes the WAL of a synchronous claim before the handler runs', async () => {
      expect(await observations('/orders/synchronous', false)).toContain(false);
    });
  });
});

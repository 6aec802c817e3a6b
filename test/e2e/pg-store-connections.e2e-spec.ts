import pg from 'pg';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ClaimRequest } from '../../lib';
import {
  PgPoolIdempotencyStore,
  createIdempotencyTableSql,
  createPartitionedIdempotencyTableSql,
} from '../../lib/postgres/pool';
import { resolvePartitioning } from '../../lib/postgres/postgres-store.options';
import { TcpProxy } from '../utils/tcp-proxy';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';
import { waitFor } from '../utils/wait-for';

/*
 * The PostgreSQL store's pooled connections when one fails under it, on a real server: a
 * connection the server ended, or whose prepared statements it dropped, is not given to the next
 * caller, and one reset while the store holds it does not end the process (an 'error' event
 * nobody hears would).
 */

const claim = (key: string): ClaimRequest => ({
  scope: '',
  key,
  fingerprint: null,
  lockTimeoutMs: 10_000,
  ttlMs: 60_000,
});

/** A claim's outcome, or the SQLSTATE it failed with. */
const settle = (claimed: Promise<{ kind: string }>) =>
  claimed.then(
    (result) => result.kind,
    (error: { code?: string; message?: string }) => `failed ${error.code ?? error.message}`,
  );

/** The statements waiting on a lock of the store's table, in this test's database. */
const LOCK_WAITERS = `FROM pg_stat_activity WHERE datname = current_database()
  AND wait_event_type = 'Lock' AND query LIKE '%idempotency_records%'`;

describe('PostgreSQL store connections', () => {
  let db: TestDatabase;
  let pool: pg.Pool;
  let store: PgPoolIdempotencyStore;

  beforeAll(async () => {
    db = await createTestDatabase();
    await db.query(createIdempotencyTableSql());
  });
  beforeEach(async () => {
    // One connection: whatever the store leaves in the pool is what the next claim gets.
    pool = new pg.Pool({ connectionString: db.url, max: 1 });
    pool.on('error', () => undefined);
    store = new PgPoolIdempotencyStore(pool);
    await store.prepare();
  });
  afterEach(() => pool.end());
  afterAll(() => db?.drop());

  /** How many statements of the store wait on the table's lock. */
  const lockWaiters = async () => (await db.query(`SELECT 1 ${LOCK_WAITERS}`)).length;

  /** The server process behind the pool's only connection. */
  const backendPid = async () =>
    (await pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;

  /** Runs `during` while a claim waits on the table's lock, then lets the claim go on. */
  async function whileClaimWaits(key: string, during: () => Promise<void>) {
    const locker = new pg.Client({ connectionString: db.url });
    await locker.connect();
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE idempotency_records IN ACCESS EXCLUSIVE MODE');
    const claimed = settle(store.claim(claim(key)));
    try {
      await waitFor(async () => (await lockWaiters()) === 1, 5000);
      await during();
    } finally {
      await locker.query('ROLLBACK');
      await locker.end();
    }
    return claimed;
  }

  it('drops a connection the server ended with FATAL (57P01): the claim waiting for it gets a new one', async () => {
    let next: Promise<string> | undefined;
    const first = await whileClaimWaits('ended', async () => {
      // Queued for the pool's only connection, it is handed that connection as the first
      // claim gives it back.
      next = settle(store.claim(claim('after-ended')));
      await waitFor(() => Promise.resolve(pool.waitingCount === 1), 5000);
      await db.query(`SELECT pg_terminate_backend(pid) ${LOCK_WAITERS}`);
    });
    expect(first).toBe('failed 57P01');
    expect(await next).toBe('claimed');
  });

  it('drops a connection whose prepared statements are gone (26000): only one claim fails', async () => {
    expect((await store.claim(claim('before-deallocate'))).kind).toBe('claimed');
    // What an application's own DISCARD ALL on the shared pool does.
    await pool.query('DEALLOCATE ALL');
    const after = [];
    for (const key of ['a', 'b', 'c']) {
      after.push(await settle(store.claim(claim(`after-deallocate-${key}`))));
    }
    expect(after).toEqual(['failed 26000', 'claimed', 'claimed']);
  });

  it('drops a connection left in an aborted transaction (25P02): only one claim fails', async () => {
    // What an application's own code can give back to the shared pool.
    const client = await pool.connect();
    await client.query('BEGIN');
    await client.query('SELECT 1 / 0').catch(() => undefined);
    client.release();
    const outcomes = [];
    for (const key of ['a', 'b']) {
      outcomes.push(await settle(store.claim(claim(`after-aborted-${key}`))));
    }
    expect(outcomes).toEqual(['failed 25P02', 'claimed']);
  });

  it('keeps the connection of a claim cancelled by a statement timeout (57014)', async () => {
    const before = await backendPid();
    const cancelled = await whileClaimWaits('cancelled', async () => {
      await db.query(`SELECT pg_cancel_backend(pid) ${LOCK_WAITERS}`);
    });
    expect(cancelled).toBe('failed 57014');
    expect(await backendPid()).toBe(before);
  });

  it('drops a connection whose statements are gone in an explicit transaction (26000, partitioned table, REPEATABLE READ default)', async () => {
    await db.query(createPartitionedIdempotencyTableSql('partitioned_records'));
    await db.query(
      `ALTER DATABASE ${new URL(db.url).pathname.slice(1)} SET default_transaction_isolation = 'repeatable read'`,
    );
    const partitionedPool = new pg.Pool({ connectionString: db.url, max: 1 });
    partitionedPool.on('error', () => undefined);
    try {
      const partitioned = new PgPoolIdempotencyStore(
        partitionedPool,
        'partitioned_records',
        resolvePartitioning({}, {}),
      );
      await partitioned.prepare();
      expect((await partitioned.claim(claim('before'))).kind).toBe('claimed');
      await partitionedPool.query('DEALLOCATE ALL');
      const outcomes = [];
      for (const key of ['a', 'b', 'c']) {
        outcomes.push(await settle(partitioned.claim(claim(`after-${key}`))));
      }
      expect(outcomes).toEqual(['failed 26000', 'claimed', 'claimed']);
    } finally {
      await partitionedPool.end();
      await db.query(
        `ALTER DATABASE ${new URL(db.url).pathname.slice(1)} RESET default_transaction_isolation`,
      );
    }
  });

  it('keeps the process alive when the connections are reset under a claim and a health check', async () => {
    const proxy = await TcpProxy.forUrl(db.url);
    const proxied = new pg.Pool({ connectionString: proxy.via(db.url), max: 2 });
    proxied.on('error', () => undefined);
    const viaProxy = new PgPoolIdempotencyStore(proxied);
    const unheard: unknown[] = [];
    const onUncaught = (error: unknown) => unheard.push(error);
    process.on('uncaughtException', onUncaught);
    try {
      await viaProxy.prepare();
      store = viaProxy;
      let health: Promise<string> | undefined;
      const claimed = await whileClaimWaits('reset', async () => {
        health = viaProxy
          .health({ detailTimeoutMs: 5000, purgeBacklogLimit: 10, oldestInFlight: true })
          .then(
            () => 'answered',
            () => 'failed',
          );
        // Both wait on the table's lock, each on a connection the store holds.
        await waitFor(async () => (await lockWaiters()) === 2, 5000);
        proxy.cut();
      });
      expect(claimed).toMatch(/^failed/);
      expect(await health).toBe('failed');
      await sleep(100);
      expect(unheard).toEqual([]);
    } finally {
      process.off('uncaughtException', onUncaught);
      await proxied.end().catch(() => undefined);
      await proxy.close();
    }
  });
});

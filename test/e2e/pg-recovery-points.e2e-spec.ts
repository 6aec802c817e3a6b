import { Logger } from '@nestjs/common';
import pg from 'pg';
import {
  DataSource,
  type EntityManager,
  type EntitySubscriberInterface,
  EventSubscriber,
} from 'typeorm';
import type { ClaimHandle, ClaimRequest, ClaimResult } from '../../lib';
import {
  PgPoolIdempotencyStore,
  PostgresIdempotencyStore,
  createIdempotencyTableSql,
  createPartitionedIdempotencyTableSql,
} from '../../lib/postgres';
import { resolvePartitioning } from '../../lib/postgres/postgres-store.options';
import { idempotencyStatements } from '../../lib/postgres/sql/idempotency.sql';
import { KEY_LOCK } from '../../lib/postgres/sql/key-lock.sql';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';

/*
 * Recovery points on PostgreSQL where timing and configuration meet: a step's transaction that
 * ran longer than its lease, writes racing a late step recording, instances with and without the
 * steps option on one table, and TypeORM subscribers failing around a step's transaction. Each
 * case holds on the ordinary and, where it differs, the partitioned table.
 */

const LEASE_MS = 500;
const TTL_MS = 60_000;
const step = (name: string) => ({ name, result: JSON.stringify({ value: name }) });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let db: TestDatabase;
let pool: pg.Pool;

beforeAll(async () => {
  // The partitioned store logs the partitions it creates.
  Logger.overrideLogger(false);
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 6 });
  await db.query(createIdempotencyTableSql('single_records'));
  await db.query(createPartitionedIdempotencyTableSql('partitioned_records'));
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

const LAYOUTS = {
  single: () => new PgPoolIdempotencyStore(pool, 'single_records'),
  partitioned: () =>
    new PgPoolIdempotencyStore(
      pool,
      'partitioned_records',
      resolvePartitioning({}, { ttlMs: TTL_MS, lockTimeoutMs: LEASE_MS }),
    ),
};

async function recordingStore(layout: keyof typeof LAYOUTS): Promise<PgPoolIdempotencyStore> {
  const store = LAYOUTS[layout]();
  store.enableRecoveryPoints();
  await store.prepare();
  return store;
}

const request = (key: string, overrides: Partial<ClaimRequest> = {}): ClaimRequest => ({
  scope: 'pg-steps',
  key,
  fingerprint: 'fp',
  lockTimeoutMs: LEASE_MS,
  ttlMs: TTL_MS,
  ...overrides,
});

function claimedHandle(result: ClaimResult): ClaimHandle {
  if (result.kind !== 'claimed') {
    throw new Error(`expected a claim, got ${result.kind}`);
  }
  return result.handle;
}

describe.each(Object.keys(LAYOUTS) as (keyof typeof LAYOUTS)[])('%s table', (layout) => {
  it('renews the lease from the commit of a step’s transaction, however long its work ran', async () => {
    const store = await recordingStore(layout);
    const handle = claimedHandle(await store.claim(request(`phase-lease-${layout}`)));
    const phase = await store.beginStepTransaction();
    await (phase.transaction as pg.PoolClient).query('SELECT 1');
    await sleep(LEASE_MS + 300);
    expect(await phase.commitWithStep(handle, 0, step('reserve'), LEASE_MS)).toBe(true);
    // Right after the commit the lease has (almost) all of its length left.
    expect((await store.claim(request(`phase-lease-${layout}`))).kind).toBe('in-flight');
  });

  it('hands no steps to the same request once its key expired', async () => {
    const store = await recordingStore(layout);
    const expiring = request(`expired-${layout}`, { lockTimeoutMs: 1, ttlMs: 200 });
    const handle = claimedHandle(await store.claim(expiring));
    expect(await store.saveStep(handle, 0, step('charge'), 1)).toBe(true);
    await sleep(400);
    expect(await store.claim(expiring)).toMatchObject({ kind: 'claimed', steps: [] });
  });

  it('hands no steps on from a claim of an instance without the steps option', async () => {
    const recording = await recordingStore(layout);
    const plain = LAYOUTS[layout]();
    await plain.prepare();
    const key = `mixed-${layout}`;
    const first = claimedHandle(
      await recording.claim(request(key, { lockTimeoutMs: 1, ttlMs: 200 })),
    );
    expect(await recording.saveStep(first, 0, step('charge'), 1)).toBe(true);
    await sleep(400);
    // The key expired; an instance without steps claims it anew (keeping the column as it is),
    // and dies; a recording instance takes the key over after that lease.
    expect((await plain.claim(request(key, { lockTimeoutMs: 100 }))).kind).toBe('claimed');
    await sleep(200);
    expect(await recording.claim(request(key, { lockTimeoutMs: 100 }))).toMatchObject({
      kind: 'claimed',
      steps: [],
    });
  });
});

describe('a step recording that lands late', () => {
  it('keeps the key for its request when a release waited for it (single table)', async () => {
    const store = await recordingStore('single');
    const handle = claimedHandle(
      await store.claim(request('late-release', { lockTimeoutMs: 5000 })),
    );
    // The recording is applied in a transaction that holds the row while the release arrives.
    const late = await pool.connect();
    try {
      await late.query('BEGIN');
      const saveStep = idempotencyStatements('single_records', true).saveStep!;
      const values = [handle.scope, handle.key, handle.token, 'charge', step('charge').result];
      await late.query(saveStep, [...values, '5000', '0']);
      const releasing = store.release(handle);
      await sleep(100);
      await late.query('COMMIT');
      expect(await releasing).toBe(true);
    } finally {
      late.release();
    }
    // Kept for the same request, which resumes after the step, under a token of its own.
    const resumed = await store.claim(request('late-release', { lockTimeoutMs: 5000 }));
    expect(resumed).toMatchObject({ kind: 'claimed', steps: [step('charge')] });
  });

  it.each(['complete', 'markNotReplayable'] as const)(
    'is found by a %s sent before it landed (partitioned table: the row moved partition)',
    async (write) => {
      const store = await recordingStore('partitioned');
      const key = `late-${write}`;
      const handle = claimedHandle(await store.claim(request(key, { lockTimeoutMs: 5000 })));
      await sleep(30);
      // The key's lock is held elsewhere: the recording waits (its caller gave up), and the
      // request's answer is written behind it with the handle as it was.
      const blocker = await pool.connect();
      try {
        await blocker.query(`SELECT pg_advisory_lock(${KEY_LOCK})`, [handle.scope, key]);
        const recording = store.saveStep(handle, 0, step('charge'), 5000);
        await sleep(50);
        const answer =
          write === 'complete'
            ? store.complete(handle, { status: 200, headers: {}, body: Buffer.from('{}') }, TTL_MS)
            : store.markNotReplayable(handle, 200, TTL_MS);
        await sleep(50);
        await blocker.query(`SELECT pg_advisory_unlock(${KEY_LOCK})`, [handle.scope, key]);
        expect(await Promise.all([recording, answer])).toEqual([true, true]);
      } finally {
        blocker.release();
      }
      const rows = await db.query<{ state: string }>(
        'SELECT state FROM partitioned_records WHERE key = $1',
        [key],
      );
      expect(rows).toEqual([{ state: write === 'complete' ? 'completed' : 'not_replayable' }]);
    },
  );
});

describe('a step’s transaction on TypeORM whose subscribers fail', () => {
  const failing = { afterStart: false, beforeRollback: false };

  @EventSubscriber()
  class FailingSubscriber implements EntitySubscriberInterface {
    afterTransactionStart(): void {
      if (failing.afterStart) {
        failing.afterStart = false;
        throw new Error('a subscriber failed after the transaction started');
      }
    }
    beforeTransactionRollback(): void {
      if (failing.beforeRollback) {
        failing.beforeRollback = false;
        throw new Error('a subscriber failed before the rollback');
      }
    }
  }

  let dataSource: DataSource;
  let store: PostgresIdempotencyStore;
  /** Whether the pool's only connection is inside a transaction. */
  const pooledInTransaction = async () => {
    const driverPool = (dataSource.driver as unknown as { master: pg.Pool }).master;
    const [{ status }] = (
      await driverPool.query<{ status: string }>(
        "SELECT CASE WHEN pg_current_xact_id_if_assigned() IS NULL AND now() = statement_timestamp() THEN 'idle' ELSE 'open' END AS status",
      )
    ).rows;
    return status === 'open';
  };

  beforeAll(async () => {
    await db.query(createIdempotencyTableSql());
    dataSource = new DataSource({
      type: 'postgres',
      url: db.url,
      subscribers: [FailingSubscriber],
      // One connection: a transaction left open on it would be the next user's.
      extra: { max: 1 },
    });
    await dataSource.initialize();
    store = new PostgresIdempotencyStore(dataSource);
    store.enableRecoveryPoints();
    await store.prepare();
  });
  afterAll(async () => {
    await dataSource?.destroy();
  });

  it('gives the connection back outside any transaction when opening failed after BEGIN', async () => {
    failing.afterStart = true;
    await expect(store.beginStepTransaction()).rejects.toThrow(/after the transaction started/);
    expect(await pooledInTransaction()).toBe(false);
  });

  it('gives the connection back outside any transaction when TypeORM’s rollback failed', async () => {
    const phase = await store.beginStepTransaction();
    await (phase.transaction as EntityManager).query('SELECT 1');
    failing.beforeRollback = true;
    await expect(phase.rollback()).rejects.toThrow(/before the rollback/);
    expect(await pooledInTransaction()).toBe(false);
  });
});

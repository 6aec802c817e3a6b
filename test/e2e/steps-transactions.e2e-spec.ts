import { Controller, type DynamicModule, Module, Param, Post } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { PoolClient } from 'pg';
import type { EntityManager } from 'typeorm';
import {
  IdempotencyModule,
  type IdempotencyModuleForRootOptions,
  IdempotencySteps,
  Idempotent,
  PROBLEM_CONTENT_TYPE,
} from '../../lib';
import { postgresStore } from '../../lib/postgres';
import {
  createIdempotencyTableSql,
  createPartitionedIdempotencyTableSql,
  pgPoolStore,
} from '../../lib/postgres/pool';
import { InMemoryIdempotencyStore } from '../../lib/testing';
import { ADAPTERS, type TestApp, createTestApp } from '../utils/test-app';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';
import { waitFor } from '../utils/wait-for';

/*
 * Atomic phases over real HTTP on real PostgreSQL: a step run in a transaction commits its writes
 * with its recovery point, so the writes of a step that failed, or whose claim was taken over,
 * never land, and a retry finds exactly one of each.
 */

const SECRET = 'a test secret of at least thirty-two bytes';
const SHORT_LEASE_MS = 500;

/** What the next request's reservation step does after its write. */
const behaviour = {
  /** How long the reservation step works, after its write. */
  reserveMs: 0,
  /** How long the charge takes, and how many charges ran. */
  chargeMs: 0,
  charges: 0,
  failAfterWrite: false,
  /** Set: the step waits for it after its write (a stalled process). */
  stallAfterWrite: undefined as Promise<void> | undefined,
  stalled: false,
};

/** Writes one reservation row through the step's transaction, in either data layer. */
type Insert = (transaction: unknown, order: string) => Promise<number>;

function ordersController(insert: Insert) {
  @Controller('orders')
  class AtomicOrdersController {
    constructor(private readonly steps: IdempotencySteps) {}

    @Post(':order')
    @Idempotent({ lockTimeoutMs: SHORT_LEASE_MS })
    async create(@Param('order') order: string) {
      const reservation = await this.steps.runInTransaction('reserve', async (transaction) => {
        const id = await insert(transaction, order);
        await sleep(behaviour.reserveMs);
        if (behaviour.stallAfterWrite) {
          behaviour.stalled = true;
          await behaviour.stallAfterWrite;
        }
        if (behaviour.failAfterWrite) {
          behaviour.failAfterWrite = false;
          throw new Error('the step failed after its write');
        }
        return { reservation: id };
      });
      const charge = await this.steps.run('charge', async (stepKey) => {
        behaviour.charges++;
        await sleep(behaviour.chargeMs);
        return { charged: stepKey.length };
      });
      return { ...reservation, ...charge };
    }
  }
  return AtomicOrdersController;
}

const RESERVATIONS = 'CREATE TABLE reservations (id serial PRIMARY KEY, order_ref text NOT NULL)';
const INSERT = 'INSERT INTO reservations (order_ref) VALUES ($1) RETURNING id';

const viaPoolClient: Insert = async (transaction, order) =>
  (await (transaction as PoolClient).query<{ id: number }>(INSERT, [order])).rows[0].id;
const viaEntityManager: Insert = async (transaction, order) =>
  ((await (transaction as EntityManager).query(INSERT, [order])) as { id: number }[])[0].id;

/** Each store that runs steps in transactions, on a database of its own. */
const STORES: Record<string, (db: TestDatabase) => Promise<DynamicModule>> = {
  'pgPoolStore, single table': async (db) => {
    await db.query(createIdempotencyTableSql());
    return appModule(pgPoolStore({ connection: db.url }), viaPoolClient);
  },
  'pgPoolStore, partitioned table': async (db) => {
    await db.query(createPartitionedIdempotencyTableSql());
    return appModule(pgPoolStore({ connection: db.url, partitioning: {} }), viaPoolClient);
  },
  'postgresStore (TypeORM)': async (db) => {
    await db.query(createIdempotencyTableSql());
    return appModule(postgresStore(), viaEntityManager, [
      TypeOrmModule.forRoot({ type: 'postgres', url: db.url, entities: [] }),
    ]);
  },
};

@Module({})
class AtomicAppModule {}

function appModule(
  store: IdempotencyModuleForRootOptions['store'],
  insert: Insert,
  imports: DynamicModule[] = [],
): DynamicModule {
  return {
    module: AtomicAppModule,
    imports: [...imports, IdempotencyModule.forRoot({ store, steps: { keySecret: SECRET } })],
    controllers: [ordersController(insert)],
  };
}

describe.each(
  Object.keys(STORES).flatMap((store) => ADAPTERS.map((adapter) => [store, adapter] as const)),
)('steps in transactions (%s, %s)', (storeName, adapter) => {
  let db: TestDatabase;
  let app: TestApp;

  beforeAll(async () => {
    db = await createTestDatabase();
    await db.query(RESERVATIONS);
    app = await createTestApp(adapter, await STORES[storeName](db));
  });
  afterAll(async () => {
    await app?.close();
    await db?.drop();
  });
  beforeEach(() => {
    Object.assign(behaviour, {
      reserveMs: 0,
      chargeMs: 0,
      charges: 0,
      failAfterWrite: false,
      stallAfterWrite: undefined,
      stalled: false,
    });
  });

  const order = (ref: string) => app.http().post(`/orders/${ref}`).set('Idempotency-Key', ref);
  const reservations = async (ref: string) =>
    Number(
      (
        await db.query<{ n: string }>(
          'SELECT count(*) AS n FROM reservations WHERE order_ref = $1',
          [ref],
        )
      )[0].n,
    );

  it('commits the step’s write with its recovery point: one row, and a retry runs nothing', async () => {
    const ref = `once-${adapter}`;
    const first = await order(ref);
    expect(first.status).toBe(201);
    expect(await reservations(ref)).toBe(1);
    const replay = await order(ref);
    expect(replay.body).toEqual(first.body);
    expect(await reservations(ref)).toBe(1);
  });

  it('rolls the write of a step that failed back; the retry writes it once', async () => {
    const ref = `failed-${adapter}`;
    behaviour.failAfterWrite = true;
    expect((await order(ref)).status).toBe(500);
    expect(await reservations(ref)).toBe(0);
    const retried = await order(ref);
    expect(retried.status).toBe(201);
    expect(await reservations(ref)).toBe(1);
  });

  it('renews the lease from the phase’s commit, not its start: a retry during the next step waits, and the charge runs once', async () => {
    const ref = `long-phase-${adapter}`;
    // A phase longer than the lease, then a charge that takes a while.
    behaviour.reserveMs = SHORT_LEASE_MS + 200;
    behaviour.chargeMs = 300;
    const first = order(ref).then((response) => response);
    await waitFor(() => Promise.resolve(behaviour.charges === 1), 5000);
    const retry = await order(ref);
    expect(retry.status).toBe(409);
    expect((await first).status).toBe(201);
    expect(behaviour.charges).toBe(1);
    expect(await reservations(ref)).toBe(1);
  });

  it('rolls back the write of a step whose claim was taken over meanwhile: one row, from the request that took it over', async () => {
    const ref = `taken-over-${adapter}`;
    let wake!: () => void;
    behaviour.stallAfterWrite = new Promise((resolve) => (wake = resolve));
    const stalled = order(ref).then((response) => response);
    await waitFor(() => Promise.resolve(behaviour.stalled), 3000);
    behaviour.stallAfterWrite = undefined;
    try {
      // Past the stalled request's lease, a retry takes the key over and finishes.
      await sleep(SHORT_LEASE_MS + 100);
      const takeover = await order(ref);
      expect(takeover.status).toBe(201);
    } finally {
      wake();
    }
    const late = await stalled;
    expect(late.status).toBe(409);
    expect(late.headers['content-type']).toMatch(PROBLEM_CONTENT_TYPE);
    expect(await reservations(ref)).toBe(1);
    expect((await order(ref)).status).toBe(201);
  });

  it('keeps serving when the step’s connection is cut while its work runs: that request fails, the retry writes once', async () => {
    const ref = `cut-${adapter}`;
    let wake!: () => void;
    behaviour.stallAfterWrite = new Promise((resolve) => (wake = resolve));
    const cut = order(ref).then((response) => response);
    await waitFor(() => Promise.resolve(behaviour.stalled), 3000);
    behaviour.stallAfterWrite = undefined;
    try {
      // The step's connection sits in its open transaction, its insert the last statement.
      const terminated = await db.query<{ pid: number }>(
        `SELECT pg_terminate_backend(pid) AS pid FROM pg_stat_activity
          WHERE datname = current_database() AND state = 'idle in transaction'
            AND query LIKE 'INSERT INTO reservations%'`,
      );
      expect(terminated).toHaveLength(1);
    } finally {
      wake();
    }
    expect((await cut).status).toBeGreaterThanOrEqual(500);
    expect(await reservations(ref)).toBe(0);
    // Answered once the first request's key is free again (released, or its lease over).
    await waitFor(async () => (await order(ref)).status === 201, 5000, 100);
    expect(await reservations(ref)).toBe(1);
  });
});

describe.each(ADAPTERS)('steps in transactions on a store without them (%s)', (adapter) => {
  it('answers 500 steps-unavailable before the step runs', async () => {
    let inserts = 0;
    const app = await createTestApp(
      adapter,
      appModule(new InMemoryIdempotencyStore(), () => Promise.resolve(++inserts)),
    );
    try {
      const response = await app.http().post('/orders/in-memory').set('Idempotency-Key', 'k1');
      expect(response.status).toBe(500);
      expect(response.headers['content-type']).toMatch(PROBLEM_CONTENT_TYPE);
      expect(response.body.type).toBe('urn:nestjs-idempotency:problem:steps-unavailable');
      expect(inserts).toBe(0);
    } finally {
      await app.close();
    }
  });
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

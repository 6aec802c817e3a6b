import {
  BadRequestException,
  Body,
  Controller,
  type DynamicModule,
  Headers,
  Inject,
  Module,
  Post,
  Query,
} from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import {
  IdempotencyModule,
  type IdempotencyStoreDefinition,
  Idempotent,
  REPLAYED_HEADER,
} from '../../lib';
import {
  createIdempotencyTableSql,
  createPartitionedIdempotencyTableSql,
  pgPoolStore,
} from '../../lib/postgres/pool';
import { ADAPTERS, type TestApp, createTestApp } from '../utils/test-app';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';
import { waitFor } from '../utils/wait-for';

/*
 * An application that talks to PostgreSQL through node-postgres alone, with no TypeORM module:
 * its keys are kept by pgPoolStore() on a pg.Pool, the app's own or one the module creates, and its
 * handler writes its business row through the app's pool.
 */

const PROBLEM = /^application\/problem\+json/;
const REPLAYED = REPLAYED_HEADER.toLowerCase();

/** The application's pool, for its own writes. */
const APP_POOL = Symbol('app-pool');
/** A pool only the store reaches, through pgPoolStore({ poolToken }). */
const KEYS_POOL = Symbol('keys-pool');

const BUSINESS_TABLES = `
CREATE TABLE orders (id serial PRIMARY KEY, key text NOT NULL, amount integer NOT NULL);
CREATE TABLE attempts (key text NOT NULL);
`;

/**
 * One idempotent route. Every run is recorded in `attempts`, so a replay that ran the handler
 * again shows even when it wrote no order; a negative amount is refused with a 400, which the
 * module stores and replays by default (unlike 409, 429 and 5xx).
 */
@Controller('orders')
class OrdersController {
  constructor(@Inject(APP_POOL) private readonly pool: pg.Pool) {}

  @Post()
  @Idempotent()
  async create(
    @Body() body: { amount: number },
    @Headers('idempotency-key') key: string,
    @Query('delayMs') delayMs: string | undefined,
  ) {
    await this.pool.query('INSERT INTO attempts (key) VALUES ($1)', [key]);
    if (body.amount < 0) {
      throw new BadRequestException(`amount must not be negative, got ${body.amount}`);
    }
    if (delayMs) {
      await sleep(Number(delayMs));
    }
    const { rows } = await this.pool.query<{ id: number }>(
      'INSERT INTO orders (key, amount) VALUES ($1, $2) RETURNING id',
      [key, body.amount],
    );
    // The random part tells a stored answer from one computed again with the same order id.
    return { orderId: rows[0].id, amount: body.amount, receipt: randomBytes(8).toString('hex') };
  }
}

/** Provides the application's pool, as an app's own database module would. */
@Module({})
class AppDatabaseModule {
  static register(pool: pg.Pool): DynamicModule {
    return {
      module: AppDatabaseModule,
      providers: [{ provide: APP_POOL, useValue: pool }],
      exports: [APP_POOL],
    };
  }
}

/** Provides a pool for the idempotency keys alone. */
@Module({})
class KeysPoolModule {
  static register(pool: pg.Pool): DynamicModule {
    return {
      module: KeysPoolModule,
      providers: [{ provide: KEYS_POOL, useValue: pool }],
      exports: [KEYS_POOL],
    };
  }
}

@Module({})
class PgPoolAppModule {
  static register(database: DynamicModule, store: IdempotencyStoreDefinition): DynamicModule {
    return {
      module: PgPoolAppModule,
      imports: [database, IdempotencyModule.forRoot({ store })],
      controllers: [OrdersController],
    };
  }
}

/** A pool on `url` whose connections show in pg_stat_activity under a name of their own. */
function namedPool(url: string, name: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, application_name: name, max: 10 });
  // An idle client's error (the database dropped under it at the end) must not end the worker.
  pool.on('error', () => undefined);
  return pool;
}

const uniqueName = (what: string) => `idem-${what}-${randomBytes(4).toString('hex')}`;

describe.each(ADAPTERS)('pgPoolStore in an application without TypeORM (%s)', (adapter) => {
  let db: TestDatabase;
  let pool: pg.Pool;
  let database: DynamicModule;
  let app: TestApp;

  beforeAll(async () => {
    db = await createTestDatabase();
    await db.query(createIdempotencyTableSql());
    await db.query(BUSINESS_TABLES);
    pool = namedPool(db.url, uniqueName('app'));
    database = AppDatabaseModule.register(pool);
    app = await createTestApp(adapter, PgPoolAppModule.register(database, pgPoolStore({ pool })));
  });

  afterAll(async () => {
    await app?.close();
    if (pool && !pool.ended) {
      await pool.end();
    }
    await db?.drop();
  });

  const count = async (sql: string, values: unknown[]) =>
    Number((await db.query<{ n: string }>(sql, values))[0].n);
  const orders = (key: string) => count('SELECT count(*) AS n FROM orders WHERE key = $1', [key]);
  const attempts = (key: string) =>
    count('SELECT count(*) AS n FROM attempts WHERE key = $1', [key]);
  const records = (key: string, table = 'idempotency_records') =>
    db.query<{ state: string }>(`SELECT state FROM ${table} WHERE key = $1`, [key]);
  /** Backends connected under `name`, on the whole server. */
  const connections = (name: string) =>
    count('SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1', [name]);
  const post = (on: TestApp, key: string, body: object, query = '') =>
    on.http().post(`/orders${query}`).set('Idempotency-Key', key).send(body);

  it('runs the handler once under 30 parallel requests with one key', async () => {
    const key = `burst-${adapter}`;
    // The first run lasts long enough for every duplicate to arrive while it is in flight.
    const responses = await Promise.all(
      Array.from({ length: 30 }, () => post(app, key, { amount: 5 }, '?delayMs=300')),
    );
    expect(await orders(key)).toBe(1);
    expect(await attempts(key)).toBe(1);
    const successes = responses.filter((r) => r.status === 201);
    expect(successes.filter((r) => r.headers[REPLAYED] === undefined).length).toBe(1);
    expect(new Set(successes.map((r) => r.text)).size).toBe(1);
    // Duplicates that arrived while the first ran are refused (concurrency 'reject' in lease mode).
    const refused = responses.filter((r) => r.status !== 201);
    expect(refused.length).toBeGreaterThan(0);
    for (const response of refused) {
      expect(response.status).toBe(409);
      expect(response.headers['content-type']).toMatch(PROBLEM);
      expect(response.body.type).toBe('urn:nestjs-idempotency:problem:key-in-flight');
    }
    expect(await records(key)).toEqual([{ state: 'completed' }]);
  });

  it('replays a finished key without running the handler again', async () => {
    const key = `replay-${adapter}`;
    const first = await post(app, key, { amount: 10 });
    expect(first.status).toBe(201);
    expect(first.headers[REPLAYED]).toBeUndefined();
    const second = await post(app, key, { amount: 10 });
    expect(second.status).toBe(201);
    expect(second.headers[REPLAYED]).toBe('true');
    expect(second.text).toBe(first.text);
    expect(second.headers['content-type']).toBe(first.headers['content-type']);
    expect(await orders(key)).toBe(1);
    expect(await attempts(key)).toBe(1);
    expect(await records(key)).toEqual([{ state: 'completed' }]);
  });

  it('stores a 4xx the handler threw, and replays it', async () => {
    const key = `refused-${adapter}`;
    const first = await post(app, key, { amount: -1 });
    expect(first.status).toBe(400);
    expect(first.body.message).toBe('amount must not be negative, got -1');
    const second = await post(app, key, { amount: -1 });
    expect(second.status).toBe(400);
    expect(second.headers[REPLAYED]).toBe('true');
    expect(second.text).toBe(first.text);
    expect(await attempts(key)).toBe(1);
    expect(await orders(key)).toBe(0);
  });

  it('answers 422 problem+json for the key reused with another body, and keeps the original', async () => {
    const key = `mismatch-${adapter}`;
    const first = await post(app, key, { amount: 7 });
    expect(first.status).toBe(201);
    const other = await post(app, key, { amount: 8 });
    expect(other.status).toBe(422);
    expect(other.headers['content-type']).toMatch(PROBLEM);
    expect(other.body.type).toBe('urn:nestjs-idempotency:problem:key-mismatch');
    const again = await post(app, key, { amount: 7 });
    expect(again.headers[REPLAYED]).toBe('true');
    expect(again.text).toBe(first.text);
    expect(await orders(key)).toBe(1);
    expect(await attempts(key)).toBe(1);
  });

  it('with { connection }: keeps keys on a pool of its own, and ends it at shutdown', async () => {
    const name = uniqueName('owned');
    // No idle timeout: the pool's connections stay open until someone ends the pool.
    const own = await createTestApp(
      adapter,
      PgPoolAppModule.register(
        database,
        pgPoolStore({
          connection: { connectionString: db.url, application_name: name, idleTimeoutMillis: 0 },
        }),
      ),
    );
    let closed = false;
    try {
      const key = `owned-${adapter}`;
      const first = await post(own, key, { amount: 3 });
      expect(first.status).toBe(201);
      const second = await post(own, key, { amount: 3 });
      expect(second.headers[REPLAYED]).toBe('true');
      expect(second.text).toBe(first.text);
      expect(await orders(key)).toBe(1);
      expect(await records(key)).toEqual([{ state: 'completed' }]);
      // The keys went through the connection options given, not through the app's pool.
      expect(await connections(name)).toBeGreaterThan(0);

      await own.close();
      closed = true;
      await waitFor(async () => (await connections(name)) === 0, 5000);
    } finally {
      if (!closed) {
        await own.close();
      }
    }
  });

  it('with { pool }: leaves the application its pool, usable after shutdown', async () => {
    const name = uniqueName('borrowed');
    // The store's own pool, apart from the handler's, so that its connections tell its use.
    const borrowed = namedPool(db.url, name);
    try {
      const own = await createTestApp(
        adapter,
        PgPoolAppModule.register(database, pgPoolStore({ pool: borrowed })),
      );
      const key = `borrowed-${adapter}`;
      try {
        expect((await post(own, key, { amount: 4 })).status).toBe(201);
        expect(await connections(name)).toBeGreaterThan(0);
      } finally {
        await own.close();
      }
      expect(borrowed.ended).toBe(false);
      const { rows } = await borrowed.query<{ state: string }>(
        'SELECT state FROM idempotency_records WHERE key = $1',
        [key],
      );
      expect(rows).toEqual([{ state: 'completed' }]);
    } finally {
      // Unless the module ended it: the assertion above says so, not a second end().
      if (!borrowed.ended) {
        await borrowed.end();
      }
    }
  });

  it("with { poolToken }: takes the pool from the application's provider, and leaves it open", async () => {
    const name = uniqueName('token');
    const provided = namedPool(db.url, name);
    try {
      const own = await createTestApp(
        adapter,
        PgPoolAppModule.register(
          database,
          pgPoolStore({ poolToken: KEYS_POOL, imports: [KeysPoolModule.register(provided)] }),
        ),
      );
      const key = `token-${adapter}`;
      try {
        const first = await post(own, key, { amount: 6 });
        expect(first.status).toBe(201);
        const second = await post(own, key, { amount: 6 });
        expect(second.headers[REPLAYED]).toBe('true');
        expect(second.text).toBe(first.text);
        expect(await records(key)).toEqual([{ state: 'completed' }]);
        expect(await orders(key)).toBe(1);
        expect(await connections(name)).toBeGreaterThan(0);
      } finally {
        await own.close();
      }
      expect(provided.ended).toBe(false);
      expect((await provided.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    } finally {
      // Unless the module ended it: the assertion above says so, not a second end().
      if (!provided.ended) {
        await provided.end();
      }
    }
  });

  it('keeps keys in the table named by tableName, partitioned by expiry', async () => {
    const table = 'pg_pool_partitioned_keys';
    await db.query(createPartitionedIdempotencyTableSql(table));
    const own = await createTestApp(
      adapter,
      PgPoolAppModule.register(
        database,
        pgPoolStore({ pool, tableName: table, partitioning: { partitionMs: 86_400_000 } }),
      ),
    );
    try {
      const key = `partitioned-${adapter}`;
      const first = await post(own, key, { amount: 2 });
      expect(first.status).toBe(201);
      const second = await post(own, key, { amount: 2 });
      expect(second.headers[REPLAYED]).toBe('true');
      expect(second.text).toBe(first.text);
      expect(await records(key, table)).toEqual([{ state: 'completed' }]);
      expect(await records(key)).toEqual([]);
      expect(await attempts(key)).toBe(1);
      // The store made the partitions at start-up: none was created here.
      const partitions = await count(
        'SELECT count(*) AS n FROM pg_inherits WHERE inhparent = $1::regclass',
        [table],
      );
      expect(partitions).toBeGreaterThan(0);
    } finally {
      await own.close();
    }
  });
});

describe('pgPoolStore options', () => {
  type Options = Parameters<typeof pgPoolStore>[0];
  // Never connected: a Pool opens its first connection on its first query.
  const pool = new pg.Pool({ connectionString: 'postgres://nobody@127.0.0.1:1/none' });
  afterAll(() => pool.end());

  it('refuses to be called without pool, connection or poolToken', () => {
    expect(() => pgPoolStore({} as Options)).toThrow(/^nestjs-idempotency: .*(pool|connection)/);
    expect(() => pgPoolStore({ tableName: 'keys' } as Options)).toThrow(/^nestjs-idempotency: /);
  });

  it.each<[string, object]>([
    ['pool and connection', { pool, connection: 'postgres://nobody@127.0.0.1:1/none' }],
    ['pool and poolToken', { pool, poolToken: KEYS_POOL }],
    ['connection and poolToken', { connection: { host: '127.0.0.1' }, poolToken: KEYS_POOL }],
  ])('refuses %s together', (_, options) => {
    expect(() => pgPoolStore(options as Options)).toThrow(
      /^nestjs-idempotency: .*(pool|connection)/,
    );
  });

  it('counts a null pool as none', () => {
    expect(() => pgPoolStore({ pool: null } as unknown as Options)).toThrow(
      /^nestjs-idempotency: pgPoolStore\(\) needs exactly one of/,
    );
  });

  it('refuses, at start-up, a poolToken that gives a pg Client instead of a Pool', async () => {
    // A Client has a Pool's methods but one connection, which concurrent claims cannot share.
    const client = new pg.Client({ connectionString: 'postgres://nobody@127.0.0.1:1/none' });
    const module: DynamicModule = {
      module: class ClientAsPoolModule {},
      imports: [
        {
          module: KeysPoolModule,
          providers: [{ provide: KEYS_POOL, useValue: client }],
          exports: [KEYS_POOL],
          global: true,
        },
        IdempotencyModule.forRoot({ store: pgPoolStore({ poolToken: KEYS_POOL }) }),
      ],
    };
    await expect(Test.createTestingModule({ imports: [module] }).compile()).rejects.toThrow(
      /needs a pg Pool; its poolToken \(Symbol\(keys-pool\)\) gives a Client/,
    );
  });
});

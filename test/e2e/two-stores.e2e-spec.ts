import { type DynamicModule, Module } from '@nestjs/common';
import { IdempotencyModule, IdempotencyStore, type IdempotencyStoreDefinition } from '../../lib';
import { postgresStore } from '../../lib/postgres';
import { InMemoryIdempotencyStore } from '../../lib/testing';
import { fixtureDatabase } from './fixtures/fixture-database.module';
import { LedgerController } from './fixtures/ledger.controller';
import { OrdersController } from './fixtures/orders.controller';
import { ADAPTERS, type TestApp, createTestApp, expectStartFailure } from '../utils/test-app';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';

/**
 * Lease routes on one store and transactional routes on another, in one registration: the
 * orders' keys in memory, the ledger's in PostgreSQL with the ledger's writes.
 */
@Module({})
class TwoStoresModule {
  static register(
    databaseUrl: string,
    store: IdempotencyStoreDefinition,
    transactionalStore: IdempotencyStoreDefinition,
  ): DynamicModule {
    return {
      module: TwoStoresModule,
      imports: [
        fixtureDatabase({ databaseUrl }),
        IdempotencyModule.forRoot({ store, transactionalStore, purgeIntervalMs: 0 }),
      ],
      controllers: [OrdersController, LedgerController],
    };
  }
}

describe.each(ADAPTERS)('a lease store and a transactional store in one module (%s)', (adapter) => {
  let db: TestDatabase;
  let app: TestApp;
  let memory: InMemoryIdempotencyStore;

  beforeAll(async () => {
    db = await createTestDatabase();
    memory = new InMemoryIdempotencyStore();
    app = await createTestApp(adapter, TwoStoresModule.register(db.url, memory, postgresStore()));
  });

  afterAll(async () => {
    await app?.close();
    await db?.drop();
  });

  const count = async (sql: string, values: unknown[]) =>
    Number((await db.query<{ n: string }>(sql, values))[0].n);
  const executions = (route: string, key: string) =>
    count('SELECT count(*) AS n FROM executions WHERE route = $1 AND idem_key = $2', [route, key]);
  const records = (key: string) =>
    count('SELECT count(*) AS n FROM idempotency_records WHERE key = $1', [key]);

  it('keeps the keys of lease routes in the lease store, and replays them', async () => {
    const key = `order-${adapter}`;
    const send = () => app.http().post('/orders').set('Idempotency-Key', key).send({ item: 'a' });
    const first = await send();
    expect(first.status).toBe(201);
    const replay = await send();
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.text).toBe(first.text);
    expect(await executions('create', key)).toBe(1);
    expect(await records(key)).toBe(0);
    expect(app.app.get(IdempotencyStore)).toBe(memory);
    expect(
      await memory.claim({ scope: '', key, fingerprint: null, lockTimeoutMs: 1000, ttlMs: 1000 }),
    ).toMatchObject({ kind: 'replay' });
  });

  it('keeps the keys of transactional routes in PostgreSQL, committed with their writes', async () => {
    const key = `entry-${adapter}`;
    const send = () => app.http().post('/ledger/entries').set('Idempotency-Key', key).send({});
    const first = await send();
    expect(first.status).toBe(201);
    const replay = await send();
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.text).toBe(first.text);
    expect(await executions('entries', key)).toBe(1);
    expect(await records(key)).toBe(1);
    expect(
      await memory.claim({ scope: '', key, fingerprint: null, lockTimeoutMs: 1000, ttlMs: 1000 }),
    ).toMatchObject({ kind: 'claimed' });
  });

  it('refuses to start with a transactionalStore that cannot run transactions', async () => {
    const other = await createTestDatabase();
    try {
      await expectStartFailure(
        adapter,
        TwoStoresModule.register(other.url, postgresStore(), new InMemoryIdempotencyStore()),
        /transactionalStore must be a store that runs transactions .*InMemoryIdempotencyStore is not/,
      );
    } finally {
      await other.drop();
    }
  });
});

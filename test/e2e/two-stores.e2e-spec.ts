import { type DynamicModule, Inject, Injectable, Module, type Type } from '@nestjs/common';
import { APP_INTERCEPTOR, HttpAdapterHost, Reflector } from '@nestjs/core';
import {
  type IdempotencyRequestInfo,
  IdempotencyInterceptor,
  IdempotencyModule,
  IdempotencyStore,
  type IdempotencyStoreDefinition,
  IdempotencyTransactionContext,
  type ResolvedModuleSettings,
  type ResolvedRouteSettings,
} from '../../lib';
import { IDEMPOTENCY_SETTINGS } from '../../lib/idempotency.module-definition';
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
    /** An interceptor of the application's own, registered for every route. */
    interceptor?: Type<IdempotencyInterceptor>,
  ): DynamicModule {
    return {
      module: TwoStoresModule,
      imports: [
        fixtureDatabase({ databaseUrl }),
        IdempotencyModule.forRoot({ store, transactionalStore, purgeIntervalMs: 0 }),
      ],
      controllers: [OrdersController, LedgerController],
      providers: interceptor ? [Metrics, { provide: APP_INTERCEPTOR, useClass: interceptor }] : [],
    };
  }
}

/** A service of the application's own that a subclass of the interceptor takes. */
@Injectable()
class Metrics {
  readonly seen: string[] = [];
}

/**
 * A subclass with a constructor of its own: the interceptor's five arguments, then a dependency
 * of the application's.
 */
@Injectable()
class AuditedInterceptor extends IdempotencyInterceptor {
  constructor(
    @Inject(IDEMPOTENCY_SETTINGS) settings: ResolvedModuleSettings,
    store: IdempotencyStore,
    reflector: Reflector,
    adapterHost: HttpAdapterHost,
    transactionContext: IdempotencyTransactionContext,
    private readonly metrics: Metrics,
  ) {
    super(settings, store, reflector, adapterHost, transactionContext);
  }

  protected override computeFingerprint(
    info: IdempotencyRequestInfo,
    settings: ResolvedRouteSettings,
  ): string | null {
    this.metrics.seen.push(info.method);
    return super.computeFingerprint(info, settings);
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

  it('gives a subclass of the interceptor its own dependencies and the transactional store', async () => {
    const other = await createTestDatabase();
    const audited = await createTestApp(
      adapter,
      TwoStoresModule.register(
        other.url,
        new InMemoryIdempotencyStore(),
        postgresStore(),
        AuditedInterceptor,
      ),
    );
    try {
      const key = `audited-${adapter}`;
      const send = () =>
        audited.http().post('/ledger/entries').set('Idempotency-Key', key).send({});
      expect((await send()).status).toBe(201);
      expect((await send()).headers['idempotent-replayed']).toBe('true');
      const rows = await other.query<{ n: string }>(
        'SELECT count(*) AS n FROM idempotency_records WHERE key = $1',
        [key],
      );
      expect(Number(rows[0].n)).toBe(1);
      // The subclass ran, with its own dependency.
      expect(audited.app.get(Metrics).seen).toEqual(['POST', 'POST']);
    } finally {
      await audited.close();
      await other.drop();
    }
  });
});

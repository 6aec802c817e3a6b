import { type DynamicModule, Module } from '@nestjs/common';
import {
  type IdempotencyHealthQuery,
  IdempotencyModule,
  type IdempotencyStoreDefinition,
  type IdempotencyStoreHealth,
} from '../../lib';
import type { IdempotencyHealthDetails } from '../../lib/health';
import { postgresStore } from '../../lib/postgres';
import { redisStore } from '../../lib/redis';
import { InMemoryIdempotencyStore } from '../../lib/testing';
import { fixtureDatabase } from './fixtures/fixture-database.module';
import { HealthFixtureModule, type HealthOptionsHolder } from './fixtures/health-app.module';
import { type RedisServer, describeWithRedis, startRedisServer } from '../utils/redis-servers';
import { ADAPTERS, type TestApp, createTestApp } from '../utils/test-app';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';
import { waitFor } from '../utils/wait-for';

/*
 * GET /health over a module with two stores, each checked: lease routes on Redis (one PING), the
 * transactional routes' on PostgreSQL. Redis frozen or killed takes the check down within the
 * timeout while PostgreSQL still reports up; the in-memory store reports what it holds.
 */

const describeRedis = describeWithRedis();
const TEST_TIMEOUT_MS = 60_000;
const TIMEOUT_MS = 1000;
const DOWN_WITHIN_MS = TIMEOUT_MS + 1500;

interface HealthBody {
  status: 'ok' | 'error' | 'degraded';
  details: { idempotency: { status: string } & IdempotencyHealthDetails };
}

@Module({})
class StoresModule {
  static register(
    databaseUrl: string,
    store: IdempotencyStoreDefinition,
    transactionalStore?: IdempotencyStoreDefinition,
  ): DynamicModule {
    return {
      module: StoresModule,
      imports: [
        fixtureDatabase({ databaseUrl }),
        IdempotencyModule.forRoot({ store, transactionalStore, purgeIntervalMs: 0 }),
      ],
    };
  }
}

const health = async (app: TestApp) => {
  const started = Date.now();
  const response = await app.http().get('/health');
  const body = response.body as HealthBody;
  return {
    status: response.status,
    body,
    details: body.details.idempotency,
    elapsedMs: Date.now() - started,
  };
};

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

describeRedis.each(ADAPTERS)('health indicator on Redis and PostgreSQL (%s)', (adapter) => {
  let server: RedisServer;
  let app: TestApp;

  beforeAll(async () => {
    server = await startRedisServer();
    app = await createTestApp(
      adapter,
      HealthFixtureModule.register(
        StoresModule.register(
          db.url,
          redisStore({ redis: { host: '127.0.0.1', port: server.port }, commandTimeoutMs: 500 }),
          postgresStore(),
        ),
      ),
    );
  }, TEST_TIMEOUT_MS);

  afterAll(async () => {
    server?.resume();
    await app?.close();
    await server?.stop();
  });

  it('checks both stores: 200 with each one up', async () => {
    const { status, body, details } = await health(app);
    expect(status).toBe(200);
    expect(body.status).toBe('ok');
    expect(details).toEqual({
      status: 'up',
      store: { status: 'up', kind: 'redis', responseMs: expect.any(Number) },
      transactionalStore: {
        status: 'up',
        kind: 'postgres',
        responseMs: expect.any(Number),
        purgeBacklog: 0,
        purgeBacklogCapped: false,
      },
    });
  });

  it(
    'answers 503 within the timeout while Redis is frozen, PostgreSQL still up',
    async () => {
      server.pause();
      try {
        const { status, body, details, elapsedMs } = await health(app);
        expect(status).toBe(503);
        expect(body.status).toBe('error');
        expect(details.status).toBe('down');
        expect(details.store).toEqual({ status: 'down', error: expect.any(String) });
        expect(details.transactionalStore.status).toBe('up');
        expect(elapsedMs).toBeLessThan(DOWN_WITHIN_MS);
      } finally {
        server.resume();
      }
      await waitFor(async () => (await health(app)).status === 200, 15_000, 100);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'answers 503 at once while Redis is killed, and 200 once it is back',
    async () => {
      await server.kill();
      const { status, details, elapsedMs } = await health(app);
      expect(status).toBe(503);
      expect(details.store.status).toBe('down');
      expect(details.transactionalStore.status).toBe('up');
      expect(elapsedMs).toBeLessThan(DOWN_WITHIN_MS);
      await server.restart();
      await waitFor(async () => (await health(app)).status === 200, 15_000, 100);
    },
    TEST_TIMEOUT_MS,
  );
});

describe.each(ADAPTERS)('health indicator on the in-memory store (%s)', (adapter) => {
  const clock = { now: 1_000_000 };
  const store = new InMemoryIdempotencyStore({ now: () => clock.now });
  const options: HealthOptionsHolder = { current: { oldestInFlight: true } };
  let app: TestApp;

  beforeAll(async () => {
    app = await createTestApp(
      adapter,
      HealthFixtureModule.register(StoresModule.register(db.url, store), options),
    );
  });
  afterAll(async () => {
    await app?.close();
  });

  it('reports the keys in flight and the expired ones on its own clock', async () => {
    const claim = (key: string, ttlMs: number) =>
      store.claim({ scope: '', key, fingerprint: 'f', lockTimeoutMs: 1000, ttlMs });
    expect((await health(app)).details.store).toMatchObject({
      status: 'up',
      kind: 'in-memory',
      purgeBacklog: 0,
      oldestInFlightAgeMs: null,
    });
    await claim('short', 1);
    clock.now += 500;
    await claim('long', 60_000);
    clock.now += 1000;
    // 'short' expired (lease + TTL), 'long' claimed 1000 ms ago.
    expect((await health(app)).details.store).toMatchObject({
      purgeBacklog: 1,
      purgeBacklogCapped: false,
      oldestInFlightAgeMs: 1000,
    });
  });
});

/** A store whose backend never answers a health check, keeping the checks it was asked for. */
class FrozenHealthStore extends InMemoryIdempotencyStore {
  queries: IdempotencyHealthQuery[] = [];

  get checks(): number {
    return this.queries.length;
  }

  override health(query: IdempotencyHealthQuery): Promise<IdempotencyStoreHealth> {
    this.queries.push(query);
    return new Promise(() => undefined);
  }
}

describe.each(ADAPTERS)('health indicator on a store that hangs (%s)', (adapter) => {
  const store = new FrozenHealthStore();
  let app: TestApp;

  beforeAll(async () => {
    app = await createTestApp(
      adapter,
      HealthFixtureModule.register(StoresModule.register(db.url, store), {
        current: { timeoutMs: 300 },
      }),
    );
  });
  afterAll(async () => {
    await app?.close();
  });

  it('answers 503 at the timeout, and joins the check still running for ten timeouts', async () => {
    const polls = await Promise.all([health(app), health(app), health(app)]);
    for (const poll of polls) {
      expect(poll.status).toBe(503);
      expect(poll.details.store).toEqual({
        status: 'down',
        error: 'The idempotency store did not answer within 300 ms.',
      });
      expect(poll.elapsedMs).toBeGreaterThanOrEqual(250);
      expect(poll.elapsedMs).toBeLessThan(1500);
    }
    expect((await health(app)).status).toBe(503);
    expect(store.checks).toBe(1);
    // The store is told how long the indicator waits, so it can stop a check nobody awaits.
    expect(store.queries[0].timeoutMs).toBe(300);
    // Ten timeouts on, a check that never ended is no longer joined: a new one starts.
    await new Promise((resolve) => setTimeout(resolve, 10 * 300));
    expect((await health(app)).status).toBe(503);
    expect(store.checks).toBe(2);
  });
});

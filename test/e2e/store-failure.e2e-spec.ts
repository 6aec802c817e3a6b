import type { Response } from 'supertest';
import type { ProblemDetails } from '../../lib';
import { FixtureAppModule } from './fixtures/fixture-app.module';
import { TcpProxy } from '../utils/tcp-proxy';
import { ADAPTERS, type TestApp, createTestApp } from '../utils/test-app';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';

const STORE_TIMEOUT_MS = 1000;
/** Bound on a 503: the store timeout plus generous slack for a busy machine, never a hang. */
const MAX_FAILURE_MS = 4000;
/** How long the pool may take to be usable again after the database comes back. */
const RECOVERY_MS = 20_000;
const TEST_TIMEOUT_MS = 60_000;

describe.each(ADAPTERS)('store failure (%s)', (adapter) => {
  let db: TestDatabase;
  let proxy: TcpProxy;
  let app: TestApp;

  beforeAll(async () => {
    db = await createTestDatabase();
    proxy = await TcpProxy.forUrl(db.url);
    // Started while the proxy passes traffic: the fixture app runs its migrations at start.
    app = await createTestApp(
      adapter,
      FixtureAppModule.register({
        databaseUrl: proxy.via(db.url),
        idempotency: { storeTimeoutMs: STORE_TIMEOUT_MS },
      }),
    );
  }, TEST_TIMEOUT_MS);

  afterEach(() => proxy.restore());

  afterAll(async () => {
    await app?.close();
    await proxy?.close();
    await db?.drop();
  }, TEST_TIMEOUT_MS);

  const order = (key: string) =>
    app.http().post('/orders').set('Idempotency-Key', key).send({ item: 'book' });
  const timedOrder = async (key: string) => {
    const started = Date.now();
    const response = await order(key);
    return { response, elapsedMs: Date.now() - started };
  };
  // Counted on the real database, not through the proxy that is failing.
  const executions = async (key: string) =>
    Number(
      (
        await db.query<{ n: string }>(
          "SELECT count(*) AS n FROM executions WHERE route = 'create' AND idem_key = $1",
          [key],
        )
      )[0].n,
    );
  const expectStoreUnavailable = (response: Response) => {
    expect(response.status).toBe(503);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(response.headers['retry-after']).toBe('1');
    expect((response.body as ProblemDetails).type).toBe(
      'urn:nestjs-idempotency:problem:store-unavailable',
    );
  };
  /** Sends fresh keys until one runs: the pool drops broken connections and opens new ones. */
  const waitForRecovery = async () => {
    const deadline = Date.now() + RECOVERY_MS;
    for (let attempt = 0; ; attempt++) {
      const probe = await order(`probe-${adapter}-${Date.now()}-${attempt}`);
      if (probe.status === 201) {
        return;
      }
      if (Date.now() > deadline) {
        throw new Error(`no 201 within ${RECOVERY_MS} ms; last status ${probe.status}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  };

  it(
    'answers 503 within a bound while the database is stalled, without running the handler',
    async () => {
      const key = `stalled-${adapter}`;
      proxy.stall();
      const { response, elapsedMs } = await timedOrder(key);
      expectStoreUnavailable(response);
      // It waited for the store timeout (the stall really held the claim), and no longer.
      expect(elapsedMs).toBeGreaterThanOrEqual(STORE_TIMEOUT_MS - 100);
      expect(elapsedMs).toBeLessThan(MAX_FAILURE_MS);
      expect(await executions(key)).toBe(0);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'answers 503 within a bound while the connection is cut, without running the handler',
    async () => {
      const key = `cut-${adapter}`;
      proxy.cut();
      const { response, elapsedMs } = await timedOrder(key);
      expectStoreUnavailable(response);
      expect(elapsedMs).toBeLessThan(MAX_FAILURE_MS);
      expect(await executions(key)).toBe(0);
    },
    TEST_TIMEOUT_MS,
  );

  it.each(['stall', 'cut'] as const)(
    'recovers after a %s without a restart; the key that got 503 then runs exactly once',
    async (fault) => {
      const key = `recovered-${fault}-${adapter}`;
      proxy[fault]();
      const unavailable = await order(key);
      expectStoreUnavailable(unavailable);
      proxy.restore();
      await waitForRecovery();
      expect(await executions(key)).toBe(0);
      // A client honours Retry-After. Its claim may still land once the database answers (the
      // stalled statement runs then) and is released right after; the retry must not beat that.
      await new Promise((resolve) =>
        setTimeout(resolve, Number(unavailable.headers['retry-after']) * 1000),
      );

      const retry = await order(key);
      expect(retry.status).toBe(201);
      expect(retry.headers['idempotent-replayed']).toBeUndefined();
      expect(await executions(key)).toBe(1);

      const replay = await order(key);
      expect(replay.status).toBe(201);
      expect(replay.headers['idempotent-replayed']).toBe('true');
      expect(replay.text).toBe(retry.text);
      expect(await executions(key)).toBe(1);
    },
    TEST_TIMEOUT_MS,
  );
});

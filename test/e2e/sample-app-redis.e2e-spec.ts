import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Cluster, Redis } from 'ioredis';
import { redisKeyName } from '../../lib/redis/redis-key';
import {
  type RedisCluster,
  type RedisServer,
  describeWithRedis,
  startRedisCluster,
  startRedisServer,
} from '../utils/redis-servers';
import {
  type RawAnswer,
  type SampleAppRedis,
  jsonOf,
  postRaw,
  startRedisSampleApp,
} from '../utils/redis-sample-app';
import type { SampleAppProcess } from '../utils/sample-app-process';
import { ADAPTERS, type AdapterName } from '../utils/test-app';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';
import { waitFor } from '../utils/wait-for';

/*
 * The sample app as real child processes with IDEMPOTENCY_STORE=redis: `/payments` keeps its
 * keys in a redis-server (standalone, then a 3+3 Cluster) started here, `/transfers` stays
 * transactional on PostgreSQL. Executions are counted in PostgreSQL (`payment_attempts` has one
 * row per run of the payments handler, `payments` one per payment), never from logs.
 */

const describeRedis = describeWithRedis();
/** The simulated card network's latency: long enough that duplicates overlap the execution. */
const LATENCY_MS = 800;
/** When a key's duplicates follow its first request: well inside the first one's LATENCY_MS. */
const DUPLICATES_AFTER_MS = 150;
/** Lease of a claim: far above LATENCY_MS, short enough to wait out in the crash test. */
const LEASE_MS = 4000;
/** The sample app's key prefix in Redis (redisStore's default). */
const KEY_PREFIX = 'idempotency:';
const PROBLEM = /^application\/problem\+json/;
const JSON_TYPE = /^application\/json/;
const PROBLEM_BASE = 'urn:nestjs-idempotency:problem:';
const PARALLEL = 30;
/** Boots (migrations included) on a busy 2-core machine. */
const BOOT_TIMEOUT_MS = 90_000;

/** What the tests of one file share: the database, and a client of the app's Redis. */
interface Backends {
  db: TestDatabase;
  redis: Redis | Cluster;
}

const pay = (app: SampleAppProcess, clientId: string, key: string, body: unknown) =>
  postRaw(
    app.url,
    '/payments',
    { 'idempotency-key': key, authorization: `Bearer ${clientId}` },
    body,
  );

const count = async (db: TestDatabase, sql: string, values: unknown[]) =>
  (await db.query<{ n: number }>(sql, values))[0].n;

/** Runs of the payments handler for one (client, key), as PostgreSQL recorded them. */
const attempts = (db: TestDatabase, clientId: string, key: string) =>
  count(
    db,
    'SELECT count(*)::int AS n FROM payment_attempts WHERE client_id = $1 AND idempotency_key = $2',
    [clientId, key],
  );

const payments = (db: TestDatabase, reference: string) =>
  count(db, 'SELECT count(*)::int AS n FROM payments WHERE reference = $1', [reference]);

/** Records of `key` in PostgreSQL's idempotency table (any client). */
const postgresRecords = (db: TestDatabase, key: string) =>
  count(db, 'SELECT count(*)::int AS n FROM idempotency_records WHERE key = $1', [key]);

/** Whether Redis holds the record of (client, key), under the name the store gives it. */
const inRedis = async (redis: Redis | Cluster, clientId: string, key: string) =>
  (await redis.exists(redisKeyName(KEY_PREFIX, clientId, key))) === 1;

const header = (answer: RawAnswer, name: string) => answer.headers[name] as string | undefined;

function expectExactReplay(replay: RawAnswer, first: RawAnswer): void {
  expect(replay.status).toBe(first.status);
  expect(header(replay, 'idempotent-replayed')).toBe('true');
  expect(header(first, 'idempotent-replayed')).toBeUndefined();
  expect(header(replay, 'content-type')).toBe(header(first, 'content-type'));
  expect(header(replay, 'location')).toBe(header(first, 'location'));
  // The bytes themselves, not a parsed equal.
  expect(replay.body).toEqual(first.body);
}

function expectConflict(answer: RawAnswer): void {
  expect(answer.status).toBe(409);
  expect(header(answer, 'content-type')).toMatch(PROBLEM);
  expect(jsonOf(answer).type).toBe(`${PROBLEM_BASE}key-in-flight`);
  const retryAfter = Number(header(answer, 'retry-after'));
  expect(Number.isInteger(retryAfter)).toBe(true);
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(Math.ceil(LEASE_MS / 1000));
}

/** A new client and key per test: every count is of this test's own rows. */
function fresh(label: string) {
  const id = randomUUID();
  return { clientId: `${label}-${id.slice(0, 8)}`, key: `${label}-${id}`, reference: id };
}

/** A payment replayed byte for byte (a 201 and a stored 402), each run once, its key in Redis. */
async function replayTest(app: SampleAppProcess, { db, redis }: Backends): Promise<void> {
  const { clientId, key, reference } = fresh('replay');
  const body = { amount: 4200, currency: 'GBP', reference };
  const first = await pay(app, clientId, key, body);
  expect(first.status).toBe(201);
  expect(header(first, 'content-type')).toMatch(JSON_TYPE);
  const payment = jsonOf<{ id: string }>(first);
  expect(jsonOf(first)).toMatchObject({ ...body, status: 'succeeded' });
  expect(header(first, 'location')).toBe(`/payments/${payment.id}`);

  const retry = await pay(app, clientId, key, body);
  expectExactReplay(retry, first);
  expect(await attempts(db, clientId, key)).toBe(1);
  expect(await payments(db, reference)).toBe(1);
  // The key lives in Redis, and not in PostgreSQL's table.
  expect(await inRedis(redis, clientId, key)).toBe(true);
  expect(await postgresRecords(db, key)).toBe(0);

  // A decline (402) is stored and replayed the same way, with no payment.
  const declined = { amount: 1_000_001, currency: 'EUR', reference: `${reference}-declined` };
  const refused = await pay(app, clientId, `${key}-declined`, declined);
  expect(refused.status).toBe(402);
  expect(jsonOf(refused)).toEqual({ error: 'card_declined' });
  expectExactReplay(await pay(app, clientId, `${key}-declined`, declined), refused);
  expect(await attempts(db, clientId, `${key}-declined`)).toBe(1);
  expect(await payments(db, declined.reference)).toBe(0);
}

/** The same key with another body: 422 problem+json, and no second run. */
async function mismatchTest(app: SampleAppProcess, { db }: Backends): Promise<void> {
  const { clientId, key, reference } = fresh('mismatch');
  const first = await pay(app, clientId, key, { amount: 10, currency: 'EUR', reference });
  expect(first.status).toBe(201);
  const other = await pay(app, clientId, key, { amount: 11, currency: 'EUR', reference });
  expect(other.status).toBe(422);
  expect(header(other, 'content-type')).toMatch(PROBLEM);
  expect(jsonOf(other).type).toBe(`${PROBLEM_BASE}key-mismatch`);
  expect(await attempts(db, clientId, key)).toBe(1);
  expect(await payments(db, reference)).toBe(1);
}

/** PARALLEL requests with one key at once: one run, one payment; the rest 409 or exact replays. */
async function parallelTest(app: SampleAppProcess, { db }: Backends): Promise<void> {
  const { clientId, key, reference } = fresh('burst');
  const body = { amount: 999, currency: 'EUR', reference };
  const answers = await Promise.all(
    Array.from({ length: PARALLEL }, () => pay(app, clientId, key, body)),
  );

  expect(await attempts(db, clientId, key)).toBe(1);
  expect(await payments(db, reference)).toBe(1);
  expect(answers.filter((answer) => ![201, 409].includes(answer.status))).toEqual([]);
  const executed = answers.filter(
    (answer) => answer.status === 201 && header(answer, 'idempotent-replayed') === undefined,
  );
  expect(executed).toHaveLength(1);
  for (const answer of answers) {
    if (answer.status === 201 && answer !== executed[0]) {
      expectExactReplay(answer, executed[0]);
    } else if (answer.status === 409) {
      expectConflict(answer);
    }
  }
  // The duplicates did overlap the execution, else this proved nothing about concurrency.
  expect(answers.filter((answer) => answer.status === 409).length).toBeGreaterThan(0);
}

/** A client of the app's Redis, for the test to look at keys. */
function redisClientFor(redis: SampleAppRedis): Redis | Cluster {
  const client =
    'url' in redis ? new Redis(redis.url, { lazyConnect: true }) : new Cluster(redis.clusterNodes);
  client.on('error', () => undefined);
  return client;
}

describeRedis('sample app with /payments on Redis, as real processes', () => {
  let db: TestDatabase;
  /** Every process started here, killed in afterAll whatever happened. */
  const processes: SampleAppProcess[] = [];

  const start = async (adapter: AdapterName, redis: SampleAppRedis, paymentLatencyMs: number) => {
    const app = await startRedisSampleApp({
      adapter,
      redis,
      databaseUrl: db.url,
      paymentLatencyMs,
      lockTimeoutMs: LEASE_MS,
    });
    processes.push(app);
    return app;
  };

  beforeAll(async () => {
    db = await createTestDatabase();
  });

  afterAll(async () => {
    await Promise.all(processes.map((app) => app.kill()));
    await db?.drop();
  });

  describe('standalone Redis', () => {
    let server: RedisServer;
    let redis: Redis | Cluster;
    const apps = {} as Record<AdapterName, SampleAppProcess>;
    const backends = (): Backends => ({ db, redis });

    beforeAll(async () => {
      server = await startRedisServer();
      const target = { url: `redis://127.0.0.1:${server.port}` };
      redis = redisClientFor(target);
      // One at a time: the first boot runs the migrations on the fresh database.
      for (const adapter of ADAPTERS) {
        apps[adapter] = await start(adapter, target, LATENCY_MS);
      }
    }, BOOT_TIMEOUT_MS);

    afterAll(async () => {
      redis?.disconnect();
      await server?.stop();
    });

    describe.each(ADAPTERS)('%s', (adapter) => {
      const app = () => apps[adapter];

      it('replays a payment with the same status, headers and body bytes, and pays once', () =>
        replayTest(app(), backends()));

      it('answers 422 problem+json to the same key with another body', () =>
        mismatchTest(app(), backends()));

      it('answers 409 with Retry-After to a duplicate while the first is in flight', async () => {
        const { clientId, key, reference } = fresh('in-flight');
        const body = { amount: 300, currency: 'EUR', reference };
        const first = pay(app(), clientId, key, body);
        // The handler has started (its run is in PostgreSQL): the key is claimed in Redis.
        await waitFor(async () => (await attempts(db, clientId, key)) === 1, 10_000);
        const duplicate = await pay(app(), clientId, key, body);
        expectConflict(duplicate);
        const executed = await first;
        expect(executed.status).toBe(201);
        expect(duplicate.latencyMs).toBeLessThan(LATENCY_MS);
        expectExactReplay(await pay(app(), clientId, key, body), executed);
        expect(await attempts(db, clientId, key)).toBe(1);
        expect(await payments(db, reference)).toBe(1);
      });

      it(`runs ${PARALLEL} parallel duplicates once`, () => parallelTest(app(), backends()));

      it('reports both stores on GET /health, and 503 within a second or so while Redis is frozen', async () => {
        const health = async () => {
          const started = Date.now();
          const response = await fetch(`${app().url}/health`);
          return {
            status: response.status,
            body: (await response.json()) as {
              details: { idempotency: Record<string, { status: string; kind?: string }> };
            },
            elapsedMs: Date.now() - started,
          };
        };
        const up = await health();
        expect(up.status).toBe(200);
        expect(up.body.details.idempotency).toMatchObject({
          status: 'up',
          store: { status: 'up', kind: 'redis' },
          transactionalStore: { status: 'up', kind: 'postgres', purgeBacklog: 0 },
        });
        server.pause();
        try {
          const down = await health();
          expect(down.status).toBe(503);
          expect(down.body.details.idempotency).toMatchObject({
            status: 'down',
            store: { status: 'down' },
            transactionalStore: { status: 'up' },
          });
          expect(down.elapsedMs).toBeLessThan(2500);
        } finally {
          server.resume();
        }
        await waitFor(async () => (await health()).status === 200, 15_000, 100);
      });

      it('keeps /transfers transactional on PostgreSQL: its record in idempotency_records', async () => {
        const openAccount = async (balance: number) =>
          jsonOf<{ id: string }>(await postRaw(app().url, '/accounts', {}, { balance })).id;
        const from = await openAccount(1000);
        const to = await openAccount(0);
        const { clientId, key } = fresh('transfer');
        const send = () =>
          postRaw(
            app().url,
            '/transfers',
            { 'idempotency-key': key, authorization: `Bearer ${clientId}` },
            { from, to, amount: 100 },
          );
        const first = await send();
        expect(first.status).toBe(201);
        expectExactReplay(await send(), first);

        expect(
          await db.query(
            'SELECT scope, state, response_status FROM idempotency_records WHERE key = $1',
            [key],
          ),
        ).toEqual([{ scope: clientId, state: 'completed', response_status: 201 }]);
        expect(await inRedis(redis, clientId, key)).toBe(false);
        expect(
          await count(db, 'SELECT count(*)::int AS n FROM transfers WHERE from_account = $1', [
            from,
          ]),
        ).toBe(1);
        const balances = await db.query<{ id: string; balance: number }>(
          'SELECT id, balance FROM accounts WHERE id = ANY($1::uuid[]) ORDER BY balance',
          [[from, to]],
        );
        expect(balances).toEqual([
          { id: to, balance: 100 },
          { id: from, balance: 900 },
        ]);
        // And a payment of the same client goes to Redis, not to that table.
        const payment = fresh('beside-transfer');
        const paid = await pay(app(), clientId, payment.key, {
          amount: 1,
          currency: 'EUR',
          reference: payment.reference,
        });
        expect(paid.status).toBe(201);
        expect(await inRedis(redis, clientId, payment.key)).toBe(true);
        expect(await postgresRecords(db, payment.key)).toBe(0);
      });

      it('lets a restarted app take over the key of a killed one after the lease, then replays', async () => {
        const { clientId, key, reference } = fresh('crash');
        const body = { amount: 100, currency: 'EUR', reference };
        const target = { url: `redis://127.0.0.1:${server.port}` };
        // Charges for 30 s: it is surely killed while its handler runs.
        const doomed = await start(adapter, target, 30_000);
        const sentAt = Date.now();
        const lost = pay(doomed, clientId, key, body);
        await waitFor(async () => (await attempts(db, clientId, key)) === 1, 10_000);
        expect(await doomed.kill('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });
        expect((await lost).status).toBe(0);

        // Within the lease the key still belongs to the dead process.
        expectConflict(await pay(app(), clientId, key, body));
        expect(await payments(db, reference)).toBe(0);

        const restarted = await start(adapter, target, 0);
        let takeover: RawAnswer;
        for (;;) {
          takeover = await pay(restarted, clientId, key, body);
          if (takeover.status !== 409 || Date.now() - sentAt > LEASE_MS + 20_000) {
            break;
          }
          await sleep(200);
        }
        // Not before the lease (counted from before the claim) ended, on Redis's clock.
        expect(Date.now() - sentAt).toBeGreaterThanOrEqual(LEASE_MS);
        expect(takeover.status).toBe(201);
        expect(header(takeover, 'idempotent-replayed')).toBeUndefined();
        expect(jsonOf(takeover)).toMatchObject({ ...body, status: 'succeeded' });
        // Two runs: the killed one (never finished, no payment) and the takeover.
        expect(
          await db.query<{ finished: boolean }>(
            'SELECT finished_at IS NOT NULL AS finished FROM payment_attempts WHERE client_id = $1 AND idempotency_key = $2 ORDER BY id',
            [clientId, key],
          ),
        ).toEqual([{ finished: false }, { finished: true }]);
        expect(await payments(db, reference)).toBe(1);

        expectExactReplay(await pay(restarted, clientId, key, body), takeover);
        expectExactReplay(await pay(app(), clientId, key, body), takeover);
        expect(await attempts(db, clientId, key)).toBe(2);
        expect(await payments(db, reference)).toBe(1);
        await restarted.kill();
      });
    });

    it('runs each key once across three app instances sharing Redis and PostgreSQL', async () => {
      const third = await start('express', { url: `redis://127.0.0.1:${server.port}` }, LATENCY_MS);
      const instances = [apps.express, apps.fastify, third];
      // 72 requests: each key's first on a different instance in turn, then, while it runs (the
      // handler takes LATENCY_MS), its duplicates on the other instances. Sent all at once, the
      // warmest instance could win every claim on a loaded machine, and the runs would not spread.
      const keys = Array.from({ length: 12 }, (_, index) => ({
        ...fresh('multi'),
        amount: index + 1,
      }));
      const duplicates = 6;
      const answers = await Promise.all(
        keys.flatMap((entry, k) =>
          Array.from({ length: duplicates }, async (_, n) => {
            if (n > 0) {
              await sleep(DUPLICATES_AFTER_MS);
            }
            const answer = await pay(
              instances[(k + n) % instances.length],
              entry.clientId,
              entry.key,
              {
                amount: entry.amount,
                currency: 'EUR',
                reference: entry.reference,
              },
            );
            return { entry, answer };
          }),
        ),
      );

      for (const entry of keys) {
        expect([entry.key, await attempts(db, entry.clientId, entry.key)]).toEqual([entry.key, 1]);
        expect([entry.key, await payments(db, entry.reference)]).toEqual([entry.key, 1]);
        const mine = answers.filter((item) => item.entry === entry).map((item) => item.answer);
        expect(mine.filter((answer) => ![201, 409].includes(answer.status))).toEqual([]);
        const executed = mine.filter(
          (answer) => answer.status === 201 && header(answer, 'idempotent-replayed') === undefined,
        );
        expect([entry.key, executed.length]).toEqual([entry.key, 1]);
        for (const answer of mine) {
          if (answer.status === 201 && answer !== executed[0]) {
            expectExactReplay(answer, executed[0]);
          }
        }
      }
      // The runs were spread over the processes: each took the keys it was sent first.
      const pids = await db.query<{ pid: number }>(
        'SELECT DISTINCT pid FROM payment_attempts WHERE idempotency_key = ANY($1::text[])',
        [keys.map((entry) => entry.key)],
      );
      expect(pids.length).toBeGreaterThan(1);
    });
  });

  describe('Redis Cluster (3 primaries, 3 replicas)', () => {
    let cluster: RedisCluster;
    let redis: Redis | Cluster;
    const apps = {} as Record<AdapterName, SampleAppProcess>;
    const backends = (): Backends => ({ db, redis });

    beforeAll(async () => {
      cluster = await startRedisCluster();
      const target = { clusterNodes: cluster.nodes };
      redis = redisClientFor(target);
      await Promise.all(
        ADAPTERS.map(async (adapter) => {
          apps[adapter] = await start(adapter, target, LATENCY_MS);
        }),
      );
    }, BOOT_TIMEOUT_MS);

    afterAll(async () => {
      redis?.disconnect();
      await cluster?.stop();
    });

    describe.each(ADAPTERS)('%s', (adapter) => {
      it('replays a payment with the same status, headers and body bytes, and pays once', () =>
        replayTest(apps[adapter], backends()));

      it('answers 422 problem+json to the same key with another body', () =>
        mismatchTest(apps[adapter], backends()));

      it(`runs ${PARALLEL} parallel duplicates once`, () =>
        parallelTest(apps[adapter], backends()));
    });
  });
});

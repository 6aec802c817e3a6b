import { randomUUID } from 'node:crypto';
import { Controller, Module, Post } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { IdempotencyModule, IdempotencyStore, Idempotent } from '../../lib';
import type { ClaimRequest } from '../../lib';
import {
  RedisIdempotencyStore,
  RedisReplicationError,
  createRedisClient,
  redisStore,
} from '../../lib/redis';
import { type RedisServer, describeWithRedis, startRedisServer } from '../utils/redis-servers';
import { ADAPTERS, type TestApp, createTestApp } from '../utils/test-app';
import { waitFor } from '../utils/wait-for';

/*
 * The Redis store when Redis fails: a frozen (SIGSTOP) or killed server makes every store call
 * fail within the command timeout instead of waiting, nothing queued runs later, and the same
 * store works again once the server is back. Also WAIT without the replicas it asks for, and
 * redisStore() in an application: one execution, 503 while Redis is frozen, its client closed
 * with the application.
 */

const describeRedis = describeWithRedis();
const COMMAND_TIMEOUT_MS = 500;
/** How late a failed call may reject: the command timeout, plus scheduling slack. */
const FAIL_WITHIN_MS = COMMAND_TIMEOUT_MS + 1000;

let server: RedisServer;
let client: Redis;
let store: RedisIdempotencyStore;

const request = (key: string): ClaimRequest => ({
  scope: 'faults',
  key,
  fingerprint: 'fp',
  lockTimeoutMs: 60_000,
  ttlMs: 60_000,
});

/** How long `call` takes to reject; fails the test if it resolves. */
async function rejectionTime(call: () => Promise<unknown>): Promise<number> {
  const started = Date.now();
  await expect(call()).rejects.toThrow();
  return Date.now() - started;
}

/** Waits until the store answers again, without a new store or client. */
async function storeBack(): Promise<void> {
  await waitFor(
    async () => {
      try {
        await store.claim(request(`probe-${randomUUID()}`));
        return true;
      } catch {
        return false;
      }
    },
    15_000,
    50,
  );
}

describeRedis('RedisIdempotencyStore when Redis fails', () => {
  beforeAll(async () => {
    server = await startRedisServer();
    client = createRedisClient({
      redis: { host: '127.0.0.1', port: server.port },
      commandTimeoutMs: COMMAND_TIMEOUT_MS,
    }) as Redis;
    client.on('error', () => undefined);
    store = new RedisIdempotencyStore(client, { keyPrefix: `faults:${randomUUID()}:` });
    await store.prepare();
  });
  afterAll(async () => {
    server?.resume();
    client?.disconnect();
    await server?.stop();
  });

  it('fails every call within the command timeout while the server is frozen', async () => {
    // Every script in Redis's cache first: a call that lands late runs only if its EVALSHA
    // finds the script (the EVAL that would follow a NOSCRIPT is never sent after a timeout).
    const warm = await store.claim(request('warm'));
    if (warm.kind === 'claimed') {
      await store.markNotReplayable(warm.handle, null, 60_000);
      await store.release(warm.handle);
      await store.complete(warm.handle, { status: 200, headers: {}, body: null }, 60_000);
    }
    const held = await store.claim(request('held-before'));
    if (held.kind !== 'claimed') {
      throw new Error(`expected a claim, got ${held.kind}`);
    }
    server.pause();
    try {
      const times = await Promise.all([
        rejectionTime(() => store.claim(request('frozen'))),
        rejectionTime(() =>
          store.complete(held.handle, { status: 200, headers: {}, body: null }, 60_000),
        ),
        rejectionTime(() => store.release(held.handle)),
      ]);
      for (const time of times) {
        expect(time).toBeLessThan(FAIL_WITHIN_MS);
      }
    } finally {
      server.resume();
    }
    await storeBack();
    // The claim that timed out ran once the server thawed, and its release right behind it.
    expect(await store.claim(request('frozen'))).toMatchObject({ kind: 'claimed' });
    // The completion that timed out landed late: it was fenced by the claim's token, and valid.
    expect(await store.claim(request('held-before'))).toMatchObject({ kind: 'replay' });
  });

  it('drops a connection frozen past the socket timeout, and reconnects once it thaws', async () => {
    const socketTimeoutMs = 2 * COMMAND_TIMEOUT_MS;
    server.pause();
    try {
      expect(await rejectionTime(() => store.claim(request('long-freeze')))).toBeLessThan(
        FAIL_WITHIN_MS,
      );
      await waitFor(async () => client.status !== 'ready', 2 * socketTimeoutMs);
      // Frozen through a few reconnection attempts; meanwhile calls fail within the bound.
      for (let attempt = 0; attempt < 3; attempt++) {
        expect(await rejectionTime(() => store.claim(request('long-freeze')))).toBeLessThan(
          FAIL_WITHIN_MS,
        );
        await new Promise((resolve) => setTimeout(resolve, COMMAND_TIMEOUT_MS));
      }
    } finally {
      server.resume();
    }
    await storeBack();
    expect(await store.claim(request('long-freeze'))).toMatchObject({ kind: 'claimed' });
  });

  it('fails at once while the server is down, runs nothing later, and recovers by itself', async () => {
    await server.kill();
    await waitFor(async () => client.status !== 'ready');
    const times = await Promise.all(
      Array.from({ length: 5 }, () => rejectionTime(() => store.claim(request('while-down')))),
    );
    // At once, not at the command timeout: nothing was queued to be sent later.
    for (const time of times) {
      expect(time).toBeLessThan(COMMAND_TIMEOUT_MS / 2);
    }
    await server.restart();
    await storeBack();
    // No claim was queued while the server was down and sent once it was back.
    expect(await store.claim(request('while-down'))).toMatchObject({ kind: 'claimed' });
  });

  it('fails a claim that no replica confirms, and releases it', async () => {
    const durable = new RedisIdempotencyStore(client, {
      keyPrefix: `durable:${randomUUID()}:`,
      durability: { replicas: 1, timeoutMs: 100 },
    });
    const plain = new RedisIdempotencyStore(client, {
      keyPrefix: (durable as unknown as { keyPrefix: string }).keyPrefix,
    });
    const started = Date.now();
    await expect(durable.claim(request('unconfirmed'))).rejects.toThrow(RedisReplicationError);
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
    expect(await plain.claim(request('unconfirmed'))).toMatchObject({ kind: 'claimed' });
    // A claim that wrote nothing does not fail for want of replicas.
    expect(await durable.claim(request('unconfirmed'))).toMatchObject({ kind: 'in-flight' });
  });
});

let runs = 0;

@Controller('payments')
class PaymentsController {
  @Post()
  @Idempotent()
  create() {
    runs++;
    return { run: runs };
  }
}

describeRedis.each(ADAPTERS)('redisStore() in an application (%s)', (adapter) => {
  let app: TestApp;
  let appServer: RedisServer;

  beforeAll(async () => {
    appServer = await startRedisServer();
    @Module({
      imports: [
        IdempotencyModule.forRoot({
          store: redisStore({
            redis: { host: '127.0.0.1', port: appServer.port },
            commandTimeoutMs: COMMAND_TIMEOUT_MS,
          }),
          storeTimeoutMs: 2000,
        }),
      ],
      controllers: [PaymentsController],
    })
    class AppModule {}
    app = await createTestApp(adapter, AppModule);
  });
  afterAll(async () => {
    appServer?.resume();
    await app?.close();
    await appServer?.stop();
  });

  it('runs a key once, answers 503 while Redis is frozen, and closes its client', async () => {
    expect(app.app.get(IdempotencyStore)).toBeInstanceOf(RedisIdempotencyStore);
    const before = runs;
    const first = await app.http().post('/payments').set('Idempotency-Key', 'k-1').expect(201);
    const again = await app.http().post('/payments').set('Idempotency-Key', 'k-1').expect(201);
    expect(again.text).toBe(first.text);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(runs).toBe(before + 1);

    appServer.pause();
    try {
      const started = Date.now();
      await app.http().post('/payments').set('Idempotency-Key', 'k-2').expect(503);
      expect(Date.now() - started).toBeLessThan(FAIL_WITHIN_MS);
      expect(runs).toBe(before + 1);
    } finally {
      appServer.resume();
    }
    await waitFor(async () => {
      const response = await app.http().post('/payments').set('Idempotency-Key', 'k-2');
      return response.status === 201;
    });
    expect(runs).toBe(before + 2);

    const clients = async () => {
      const probe = createRedisClient({ redis: { host: '127.0.0.1', port: appServer.port } });
      await new RedisIdempotencyStore(probe).prepare();
      const list = String(await (probe as Redis).client('LIST'));
      probe.disconnect();
      return list.trim().split('\n').length - 1; // without the probe itself
    };
    expect(await clients()).toBe(1);
    await app.close();
    await waitFor(async () => (await clients()) === 0, 5000);
  });
});

import { randomUUID } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import type { ClaimRequest, StoredResponse } from '../../lib';
import { RedisIdempotencyStore, createRedisClient } from '../../lib/redis';
import { type RedisServer, describeWithRedis, startRedisServer } from '../utils/redis-servers';

/*
 * Whatever a client sends, a key, scope, fingerprint, header or body is data to the Redis store:
 * none of it becomes part of a key name or of a script, and each comes back as it went in.
 */

const describeRedis = describeWithRedis();

const HOSTILE = [
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  '\r\n*1\r\n$8\r\nFLUSHALL\r\n',
  "'); redis.call('FLUSHALL') --",
  ']] .. redis.call("DEL", KEYS[1]) .. [[',
  '{hash-tag}',
  'é€😀',
  '\ud800',
  'x'.repeat(100_000),
];

describeRedis('RedisIdempotencyStore with hostile input', () => {
  let server: RedisServer;
  let client: Redis | Cluster;
  let store: RedisIdempotencyStore;

  beforeAll(async () => {
    server = await startRedisServer();
    client = createRedisClient({ redis: { host: '127.0.0.1', port: server.port } });
    store = new RedisIdempotencyStore(client, { keyPrefix: `hostile:${randomUUID()}:` });
    await store.prepare();
  });
  afterAll(async () => {
    await client?.quit();
    await server?.stop();
  });

  it.each(HOSTILE.map((text, index) => [index, text]))(
    'keeps input #%i as data, in every place it can go',
    async (_index, text) => {
      const request: ClaimRequest = {
        scope: `scope-${text}`,
        key: `key-${text}`,
        fingerprint: text,
        lockTimeoutMs: 60_000,
        ttlMs: 60_000,
      };
      const claimed = await store.claim(request);
      if (claimed.kind !== 'claimed') {
        throw new Error(`expected a claim, got ${claimed.kind}`);
      }
      const response: StoredResponse = {
        status: 200,
        headers: { 'x-echo': text, [`x-${text.length}`]: text },
        body: Buffer.from(text),
      };
      expect(await store.complete(claimed.handle, response, 60_000)).toBe(true);
      expect(await store.claim(request)).toEqual({ kind: 'replay', response });
      expect(await store.claim({ ...request, fingerprint: `${text}-other` })).toEqual({
        kind: 'mismatch',
      });
      // Nothing else was touched: one key, named by the hash alone.
      const names = await (client as Redis).keys('*');
      expect(names.every((name) => /^hostile:[0-9a-f-]{36}:[A-Za-z0-9_-]{43}$/.test(name))).toBe(
        true,
      );
    },
  );

  it('keeps the store whole after all of them', async () => {
    expect(await (client as Redis).dbsize()).toBe(HOSTILE.length);
  });
});

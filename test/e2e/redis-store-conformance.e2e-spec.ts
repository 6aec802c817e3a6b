import { randomUUID } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { RedisIdempotencyStore, createRedisClient } from '../../lib/redis';
import type { RedisDurabilityOptions } from '../../lib/redis';
import { describeIdempotencyStore } from '../../lib/testing';
import {
  type RedisCluster,
  type RedisServer,
  describeWithRedis,
  startRedisCluster,
  startRedisServer,
} from '../utils/redis-servers';

/*
 * The store conformance suite on real Redis: a standalone server, and a Cluster of three
 * primaries with a replica each (with and without WAIT for that replica). Each test gets a store
 * with a key prefix of its own, which holds no keys yet.
 *
 * Redis expires keys by itself and purgeExpired() deletes nothing: the suite's 'expiring' purge
 * mode. The suite counts a test's keys by its prefix, on every primary.
 */

const describeRedis = describeWithRedis(true);

/** Keys under `prefix`, over every primary of a Cluster. KEYS skips keys past their expiry. */
async function countKeys(client: Redis | Cluster, prefix: string): Promise<number> {
  const nodes = 'nodes' in client ? client.nodes('master') : [client];
  const counts = await Promise.all(nodes.map((node) => node.keys(`${prefix}*`)));
  return counts.reduce((sum, keys) => sum + keys.length, 0);
}

/** Conformance of a store on `client()`, made when the suite's tests run. */
function describeStoreOn(
  name: string,
  client: () => Redis | Cluster,
  durability?: RedisDurabilityOptions,
): void {
  let keyPrefix = '';
  describeIdempotencyStore(
    name,
    () => {
      keyPrefix = `conformance:${randomUUID()}:`;
      return new RedisIdempotencyStore(client(), { keyPrefix, durability });
    },
    {
      purge: 'expiring',
      keyAdmin: 'by-key',
      recoveryPoints: true,
      countRecords: () => countKeys(client(), keyPrefix),
    },
  );
}

describeRedis('RedisIdempotencyStore on a standalone server', () => {
  let server: RedisServer;
  let client: Redis | Cluster;
  let oneByOne: Redis | Cluster;

  beforeAll(async () => {
    server = await startRedisServer();
    client = createRedisClient({ redis: { host: '127.0.0.1', port: server.port } });
    oneByOne = createRedisClient({
      redis: { host: '127.0.0.1', port: server.port, enableAutoPipelining: false },
    });
  });
  afterAll(async () => {
    await client?.quit();
    await oneByOne?.quit();
    await server?.stop();
  });

  describeStoreOn('standalone', () => client);
  describeStoreOn('standalone, without auto-pipelining', () => oneByOne);
});

describeRedis('RedisIdempotencyStore on a Cluster of 3 primaries and 3 replicas', () => {
  let cluster: RedisCluster;
  let client: Redis | Cluster;

  beforeAll(async () => {
    cluster = await startRedisCluster();
    client = createRedisClient({ cluster: { nodes: cluster.nodes } });
  }, 60_000);
  afterAll(async () => {
    await client?.quit();
    await cluster?.stop();
  });

  it('spreads the keys over the primaries', async () => {
    const store = new RedisIdempotencyStore(client, { keyPrefix: `spread:${randomUUID()}:` });
    await store.prepare();
    for (let i = 0; i < 30; i++) {
      await store.claim({
        scope: 's',
        key: `k${i}`,
        fingerprint: null,
        lockTimeoutMs: 60_000,
        ttlMs: 60_000,
      });
    }
    const counts = await Promise.all(
      (client as Cluster).nodes('master').map((node) => node.dbsize()),
    );
    expect(counts.filter((count) => count > 0)).toHaveLength(3);
  });

  describeStoreOn('acknowledged by the primary', () => client);
  describeStoreOn('confirmed by a replica (WAIT 1)', () => client, {
    replicas: 1,
    timeoutMs: 500,
  });
});

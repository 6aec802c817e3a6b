import { SampleConfigError, readConfig } from '../../../sample-app/config';

describe('the sample app configuration', () => {
  it('keeps every route on PostgreSQL with nothing set, whatever Redis variables the environment holds', () => {
    const config = readConfig({ REDIS_CLUSTER_NODES: 'not a list', REDIS_URL: 'redis://x:1' });
    expect(config.idempotencyStore).toBe('postgres');
    expect(config.redisUrl).toBeUndefined();
    expect(config.redisClusterNodes).toBeUndefined();
  });

  it('puts lease routes on a standalone Redis or a Cluster', () => {
    expect(
      readConfig({ IDEMPOTENCY_STORE: 'redis', REDIS_URL: 'redis://127.0.0.1:6379' }),
    ).toMatchObject({
      idempotencyStore: 'redis',
      redisUrl: 'redis://127.0.0.1:6379',
      redisClusterNodes: undefined,
    });
    expect(
      readConfig({
        IDEMPOTENCY_STORE: 'redis',
        REDIS_CLUSTER_NODES: '10.0.0.1:7000, redis-b:7001,[::1]:7002',
      }).redisClusterNodes,
    ).toEqual([
      { host: '10.0.0.1', port: 7000 },
      { host: 'redis-b', port: 7001 },
      { host: '::1', port: 7002 },
    ]);
  });

  it.each([
    [{ IDEMPOTENCY_STORE: 'memcached' }, /IDEMPOTENCY_STORE must be "postgres" or "redis"/],
    [{ IDEMPOTENCY_STORE: 'redis' }, /needs exactly one of REDIS_URL .* and REDIS_CLUSTER_NODES/],
    [
      { IDEMPOTENCY_STORE: 'redis', REDIS_URL: 'redis://a:1', REDIS_CLUSTER_NODES: 'b:2' },
      /needs exactly one of/,
    ],
    [{ IDEMPOTENCY_STORE: 'redis', REDIS_CLUSTER_NODES: 'b' }, /takes host:port entries/],
    [{ IDEMPOTENCY_STORE: 'redis', REDIS_CLUSTER_NODES: 'b:0' }, /takes host:port entries/],
    [{ IDEMPOTENCY_STORE: 'redis', REDIS_CLUSTER_NODES: 'b:70000' }, /takes host:port entries/],
  ])('refuses %j with a message of its own', (env, message) => {
    expect(() => readConfig(env)).toThrow(SampleConfigError);
    expect(() => readConfig(env)).toThrow(message);
  });
});

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

  describe('the payments consumer', () => {
    it('is off with nothing set, whatever broker variables the environment holds', () => {
      expect(
        readConfig({
          RABBITMQ_URL: 'not a url',
          PAYMENTS_QUEUE: 'amq.x',
          NATS_URL: 'not a url',
          PAYMENTS_STREAM: 'a.b',
        }).paymentsConsumer,
      ).toBeUndefined();
    });

    it('consumes payments.requested on the local broker by default', () => {
      expect(readConfig({ PAYMENTS_CONSUMER: 'rabbitmq' }).paymentsConsumer).toEqual({
        transport: 'rabbitmq',
        rabbitmqUrl: 'amqp://guest:guest@127.0.0.1:5672',
        queue: 'payments.requested',
        crashAt: undefined,
      });
    });

    it('takes its broker, queue and test hook from the environment', () => {
      expect(
        readConfig({
          PAYMENTS_CONSUMER: 'rabbitmq',
          RABBITMQ_URL: 'amqps://user:secret@broker.internal:5671/vhost',
          PAYMENTS_QUEUE: 'billing.payments',
          PAYMENTS_CONSUMER_CRASH_AT: 'after-commit',
        }).paymentsConsumer,
      ).toEqual({
        transport: 'rabbitmq',
        rabbitmqUrl: 'amqps://user:secret@broker.internal:5671/vhost',
        queue: 'billing.payments',
        crashAt: 'after-commit',
      });
    });

    it('with nats, consumes the PAYMENTS stream on the local server by default', () => {
      expect(
        readConfig({ PAYMENTS_CONSUMER: 'nats', RABBITMQ_URL: 'not a url' }).paymentsConsumer,
      ).toEqual({
        transport: 'nats',
        natsUrl: 'nats://127.0.0.1:4222',
        stream: 'PAYMENTS',
        ackWaitMs: 30_000,
        crashAt: undefined,
      });
    });

    it('with nats, takes its server, stream, ack wait and test hook from the environment', () => {
      expect(
        readConfig({
          PAYMENTS_CONSUMER: 'nats',
          NATS_URL: 'tls://user:secret@nats.internal:4222',
          PAYMENTS_STREAM: 'BILLING',
          NATS_ACK_WAIT_MS: '5000',
          PAYMENTS_CONSUMER_CRASH_AT: 'after-write',
        }).paymentsConsumer,
      ).toEqual({
        transport: 'nats',
        natsUrl: 'tls://user:secret@nats.internal:4222',
        stream: 'BILLING',
        ackWaitMs: 5000,
        crashAt: 'after-write',
      });
    });

    it('with rabbitmq, reads no NATS variable', () => {
      expect(
        readConfig({ PAYMENTS_CONSUMER: 'rabbitmq', NATS_URL: 'x', PAYMENTS_STREAM: 'a.b' })
          .paymentsConsumer?.transport,
      ).toBe('rabbitmq');
    });

    it.each([
      [
        { PAYMENTS_CONSUMER: 'kafka' },
        /PAYMENTS_CONSUMER must be "rabbitmq" or "nats", got "kafka"/,
      ],
      [
        { PAYMENTS_CONSUMER: 'nats', NATS_URL: 'http://127.0.0.1:4222' },
        /NATS_URL must be a nats:\/\/ or tls:\/\/ URL/,
      ],
      [{ PAYMENTS_CONSUMER: 'nats', NATS_URL: 'nats//x' }, /NATS_URL must be/],
      [{ PAYMENTS_CONSUMER: 'nats', PAYMENTS_STREAM: 'payments.requested' }, /PAYMENTS_STREAM/],
      [{ PAYMENTS_CONSUMER: 'nats', PAYMENTS_STREAM: 'a b' }, /PAYMENTS_STREAM/],
      [{ PAYMENTS_CONSUMER: 'nats', PAYMENTS_STREAM: 'S'.repeat(256) }, /at most 255 bytes/],
      [{ PAYMENTS_CONSUMER: 'nats', NATS_ACK_WAIT_MS: '0' }, /NATS_ACK_WAIT_MS must be a positive/],
      [
        { PAYMENTS_CONSUMER: 'nats', PAYMENTS_CONSUMER_CRASH_AT: 'before-ack' },
        /PAYMENTS_CONSUMER_CRASH_AT must be one of after-write, after-commit/,
      ],
      [
        { PAYMENTS_CONSUMER: 'rabbitmq', RABBITMQ_URL: 'http://127.0.0.1:5672' },
        /RABBITMQ_URL must be an amqp:\/\/ or amqps:\/\/ URL/,
      ],
      [{ PAYMENTS_CONSUMER: 'rabbitmq', RABBITMQ_URL: 'amqp//x' }, /RABBITMQ_URL must be/],
      [{ PAYMENTS_CONSUMER: 'rabbitmq', PAYMENTS_QUEUE: 'amq.payments' }, /PAYMENTS_QUEUE must/],
      [{ PAYMENTS_CONSUMER: 'rabbitmq', PAYMENTS_QUEUE: 'q'.repeat(251) }, /at most 250 bytes/],
      [
        { PAYMENTS_CONSUMER: 'rabbitmq', PAYMENTS_CONSUMER_CRASH_AT: 'before-ack' },
        /PAYMENTS_CONSUMER_CRASH_AT must be one of after-write, after-commit/,
      ],
      [{ PAYMENTS_CONSUMER_CRASH_AT: 'after-write' }, /needs the consumer it crashes/],
    ])('refuses %j with a message of its own', (env, message) => {
      expect(() => readConfig(env)).toThrow(SampleConfigError);
      expect(() => readConfig(env)).toThrow(message);
    });
  });
});

/** The sample app's settings, read from the environment (see the table in docs/sample-app.md). */
export interface SampleAppConfig {
  port: number;
  databaseUrl: string | undefined;
  httpAdapter: 'express' | 'fastify';
  paymentLatencyMs: number;
  idempotencyTtlMs: number;
  idempotencyLockTimeoutMs: number;
  /** Interval of the purge of expired keys; `0` turns it off. */
  idempotencyPurgeIntervalMs: number;
  /**
   * Where the keys of lease routes (`/payments`) live: PostgreSQL, or Redis at `redisUrl` or on
   * the Cluster of `redisClusterNodes`. Transactional routes (`/transfers`) stay on PostgreSQL.
   */
  idempotencyStore: 'postgres' | 'redis';
  redisUrl: string | undefined;
  /** `host:port` of some nodes of a Redis Cluster. */
  redisClusterNodes: { host: string; port: number }[] | undefined;
  /** The `X-Admin-Token` that opens `/admin/*`; unset, those endpoints answer 403. */
  adminToken: string | undefined;
  /** Base URL of the payment provider of `/orders`; unset, one is started in-process. */
  paymentProviderUrl: string | undefined;
  /** How long `/orders` waits for the payment provider's answer, in milliseconds. */
  paymentProviderTimeoutMs: number;
  /** The secret the keys of `/orders`' steps are derived with (the module's `steps.keySecret`). */
  idempotencyStepSecret: string;
  /** Test hook: where `/orders` kills its own process (SIGKILL); unset, nowhere. */
  ordersCrashAt: OrdersCrashPoint | undefined;
  /** The consumer of `payments.requested` messages and its broker; unset, none runs. */
  paymentsConsumer: PaymentsConsumerConfig | undefined;
}

/** Where the payments consumer (`PAYMENTS_CONSUMER=rabbitmq|nats`) takes its messages from. */
export type PaymentsConsumerConfig = RabbitMqPaymentsConsumerConfig | NatsPaymentsConsumerConfig;

/** `PAYMENTS_CONSUMER=rabbitmq`: a RabbitMQ queue. */
export interface RabbitMqPaymentsConsumerConfig {
  transport: 'rabbitmq';
  /** `amqp://` or `amqps://` URL of the broker. */
  rabbitmqUrl: string;
  /** The queue consumed; its dead letters go to `<queue>.dead`. */
  queue: string;
  /** Test hook: where the consumer kills its own process (SIGKILL); unset, nowhere. */
  crashAt: PaymentsConsumerCrashPoint | undefined;
}

/** `PAYMENTS_CONSUMER=nats`: a NATS JetStream stream. */
export interface NatsPaymentsConsumerConfig {
  transport: 'nats';
  /** `nats://` or `tls://` URL of the NATS server (JetStream enabled). */
  natsUrl: string;
  /** The JetStream stream that holds the `payments.requested` messages. */
  stream: string;
  /** How long JetStream waits for an ack before it delivers a message again, in milliseconds. */
  ackWaitMs: number;
  /** Test hook: where the consumer kills its own process (SIGKILL); unset, nowhere. */
  crashAt: PaymentsConsumerCrashPoint | undefined;
}

/**
 * The points of a `payments.requested` delivery where `PAYMENTS_CONSUMER_CRASH_AT` can kill the
 * process: after the payment's INSERT (before the commit), after the commit (before the ack).
 */
export const PAYMENTS_CONSUMER_CRASH_POINTS = ['after-write', 'after-commit'] as const;

export type PaymentsConsumerCrashPoint = (typeof PAYMENTS_CONSUMER_CRASH_POINTS)[number];

const DEFAULT_RABBITMQ_URL = 'amqp://guest:guest@127.0.0.1:5672';
const DEFAULT_PAYMENTS_QUEUE = 'payments.requested';
/** AMQP's limit on a queue name, in bytes, less the `.dead` of the dead-letter queue's. */
const MAX_QUEUE_NAME_BYTES = 255 - '.dead'.length;
const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';
const DEFAULT_PAYMENTS_STREAM = 'PAYMENTS';
const DEFAULT_NATS_ACK_WAIT_MS = 30_000;
/** JetStream's rule for a stream name: no whitespace, `.`, `*`, `>`, path separators; 255 bytes at most. */
const STREAM_NAME = /^[^\s.*>/\\]+$/;

/** The points of `POST /orders` where `ORDERS_CRASH_AT` can kill the process, in order. */
export const ORDERS_CRASH_POINTS = [
  'before-first-step',
  'during-charge',
  'after-charge',
  'after-recovery-point',
  'before-response',
] as const;

export type OrdersCrashPoint = (typeof ORDERS_CRASH_POINTS)[number];

/**
 * For development only: anyone can read it here. Set `IDEMPOTENCY_STEP_SECRET` (32 bytes or
 * more, the same on every instance) anywhere else.
 */
export const DEVELOPMENT_STEP_SECRET = 'sample-app development step secret, not for production';

/** A setting of the environment that the sample app cannot use; printed as its message alone. */
export class SampleConfigError extends Error {}

export function readConfig(env: NodeJS.ProcessEnv = process.env): SampleAppConfig {
  const adapter = env.HTTP_ADAPTER ?? 'express';
  if (adapter !== 'express' && adapter !== 'fastify') {
    throw new SampleConfigError(`HTTP_ADAPTER must be "express" or "fastify", got "${adapter}".`);
  }
  const store = env.IDEMPOTENCY_STORE || 'postgres';
  if (store !== 'postgres' && store !== 'redis') {
    throw new SampleConfigError(`IDEMPOTENCY_STORE must be "postgres" or "redis", got "${store}".`);
  }
  // Read only for the Redis store: these names may mean something else to the rest of the
  // environment.
  const redisUrl = store === 'redis' ? env.REDIS_URL || undefined : undefined;
  const redisClusterNodes =
    store === 'redis' && env.REDIS_CLUSTER_NODES
      ? env.REDIS_CLUSTER_NODES.split(',').map(clusterNode)
      : undefined;
  if (store === 'redis' && (redisUrl === undefined) === (redisClusterNodes === undefined)) {
    throw new SampleConfigError(
      'IDEMPOTENCY_STORE=redis needs exactly one of REDIS_URL (redis://host:port) and REDIS_CLUSTER_NODES (host:port,host:port,...).',
    );
  }
  return {
    port: integer(env, 'PORT', 3000),
    databaseUrl: env.DATABASE_URL || undefined,
    httpAdapter: adapter,
    paymentLatencyMs: integer(env, 'PAYMENT_LATENCY_MS', 0),
    idempotencyTtlMs: integer(env, 'IDEMPOTENCY_TTL_MS', 86_400_000),
    idempotencyLockTimeoutMs: integer(env, 'IDEMPOTENCY_LOCK_TIMEOUT_MS', 60_000),
    idempotencyPurgeIntervalMs: integer(env, 'IDEMPOTENCY_PURGE_INTERVAL_MS', 60_000),
    idempotencyStore: store,
    redisUrl,
    redisClusterNodes,
    adminToken: env.ADMIN_TOKEN || undefined,
    paymentProviderUrl: providerUrl(env.PAYMENT_PROVIDER_URL),
    paymentProviderTimeoutMs: positive(env, 'PAYMENT_PROVIDER_TIMEOUT_MS', 5000),
    idempotencyStepSecret: stepSecret(env.IDEMPOTENCY_STEP_SECRET),
    ordersCrashAt: crashPoint(env.ORDERS_CRASH_AT),
    paymentsConsumer: paymentsConsumer(env),
  };
}

/** Read only with `PAYMENTS_CONSUMER` set: `RABBITMQ_URL` may mean something else elsewhere. */
function paymentsConsumer(env: NodeJS.ProcessEnv): PaymentsConsumerConfig | undefined {
  const transport = env.PAYMENTS_CONSUMER || undefined;
  if (transport === undefined) {
    if (env.PAYMENTS_CONSUMER_CRASH_AT) {
      throw new SampleConfigError(
        'PAYMENTS_CONSUMER_CRASH_AT needs the consumer it crashes: set PAYMENTS_CONSUMER=rabbitmq or nats.',
      );
    }
    return undefined;
  }
  if (transport !== 'rabbitmq' && transport !== 'nats') {
    throw new SampleConfigError(
      `PAYMENTS_CONSUMER must be "rabbitmq" or "nats", got "${transport}".`,
    );
  }
  const crashAt = consumerCrashPoint(env.PAYMENTS_CONSUMER_CRASH_AT);
  if (transport === 'nats') {
    return natsPaymentsConsumer(env, crashAt);
  }
  const rabbitmqUrl = env.RABBITMQ_URL || DEFAULT_RABBITMQ_URL;
  if (!URL.canParse(rabbitmqUrl) || !/^amqps?:$/.test(new URL(rabbitmqUrl).protocol)) {
    throw new SampleConfigError(
      `RABBITMQ_URL must be an amqp:// or amqps:// URL, got "${rabbitmqUrl}".`,
    );
  }
  const queue = env.PAYMENTS_QUEUE || DEFAULT_PAYMENTS_QUEUE;
  if (Buffer.byteLength(queue) > MAX_QUEUE_NAME_BYTES || queue.startsWith('amq.')) {
    throw new SampleConfigError(
      `PAYMENTS_QUEUE must be at most ${MAX_QUEUE_NAME_BYTES} bytes and not start with "amq.", got "${queue}".`,
    );
  }
  return { transport, rabbitmqUrl, queue, crashAt };
}

/** Read only with `PAYMENTS_CONSUMER=nats`: `NATS_URL` may mean something else elsewhere. */
function natsPaymentsConsumer(
  env: NodeJS.ProcessEnv,
  crashAt: PaymentsConsumerCrashPoint | undefined,
): NatsPaymentsConsumerConfig {
  const natsUrl = env.NATS_URL || DEFAULT_NATS_URL;
  if (!URL.canParse(natsUrl) || !/^(nats|tls):$/.test(new URL(natsUrl).protocol)) {
    throw new SampleConfigError(`NATS_URL must be a nats:// or tls:// URL, got "${natsUrl}".`);
  }
  const stream = env.PAYMENTS_STREAM || DEFAULT_PAYMENTS_STREAM;
  if (Buffer.byteLength(stream) > 255 || !STREAM_NAME.test(stream)) {
    throw new SampleConfigError(
      `PAYMENTS_STREAM must be a JetStream stream name (at most 255 bytes, no whitespace, ".", "*", ">", "/" or "\\"), got "${stream}".`,
    );
  }
  return {
    transport: 'nats',
    natsUrl,
    stream,
    ackWaitMs: positive(env, 'NATS_ACK_WAIT_MS', DEFAULT_NATS_ACK_WAIT_MS),
    crashAt,
  };
}

function consumerCrashPoint(raw: string | undefined): PaymentsConsumerCrashPoint | undefined {
  if (!raw) {
    return undefined;
  }
  if (!(PAYMENTS_CONSUMER_CRASH_POINTS as readonly string[]).includes(raw)) {
    throw new SampleConfigError(
      `PAYMENTS_CONSUMER_CRASH_AT must be one of ${PAYMENTS_CONSUMER_CRASH_POINTS.join(', ')}, got "${raw}".`,
    );
  }
  return raw as PaymentsConsumerCrashPoint;
}

function providerUrl(raw: string | undefined): string | undefined {
  if (!raw) {
    return undefined;
  }
  if (!URL.canParse(raw) || !/^https?:$/.test(new URL(raw).protocol)) {
    throw new SampleConfigError(
      `PAYMENT_PROVIDER_URL must be an http:// or https:// URL, got "${raw}".`,
    );
  }
  return raw.replace(/\/+$/, '');
}

function stepSecret(raw: string | undefined): string {
  if (!raw) {
    return DEVELOPMENT_STEP_SECRET;
  }
  if (Buffer.byteLength(raw) < 32) {
    throw new SampleConfigError('IDEMPOTENCY_STEP_SECRET must be at least 32 bytes long.');
  }
  return raw;
}

function crashPoint(raw: string | undefined): OrdersCrashPoint | undefined {
  if (!raw) {
    return undefined;
  }
  if (!(ORDERS_CRASH_POINTS as readonly string[]).includes(raw)) {
    throw new SampleConfigError(
      `ORDERS_CRASH_AT must be one of ${ORDERS_CRASH_POINTS.join(', ')}, got "${raw}".`,
    );
  }
  return raw as OrdersCrashPoint;
}

function positive(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const value = integer(env, name, fallback);
  if (value === 0) {
    throw new SampleConfigError(`${name} must be a positive integer, got "${env[name]}".`);
  }
  return value;
}

/** `host:port`, or `[ipv6]:port`. */
function clusterNode(entry: string): { host: string; port: number } {
  const match = /^\s*(?:\[([0-9A-Fa-f:.]+)\]|([^:\s[\]]+)):(\d{1,5})\s*$/.exec(entry);
  const port = Number(match?.[3]);
  if (!match || port < 1 || port > 65_535) {
    throw new SampleConfigError(
      `REDIS_CLUSTER_NODES takes host:port entries ([ipv6]:port for IPv6), got "${entry}".`,
    );
  }
  return { host: match[1] ?? match[2], port };
}

function integer(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') {
    return fallback;
  }
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new SampleConfigError(`${name} must be a non-negative integer, got "${raw}".`);
  }
  return value;
}

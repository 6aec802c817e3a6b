import type { ClusterNode, ClusterOptions, RedisOptions } from 'ioredis';

/** Options of `RedisIdempotencyStore` itself, whoever owns its client. */
export interface RedisIdempotencyStoreOptions {
  /**
   * Prefix of every key name the store writes; the rest is a hash of the scope and key. Keep
   * hash tags (`{...}`) out of it on a Redis Cluster, or every key lands in one slot.
   * Default: `'idempotency:'`.
   */
  keyPrefix?: string;
  /**
   * Replicas that must have a claim and a completion before the store reports them, with Redis's
   * `WAIT`. Default: unset (a write counts once the primary has it).
   */
  durability?: RedisDurabilityOptions;
  /**
   * How long `prepare()` (run as the application starts) waits for the client to be connected
   * and ready before the start-up fails, in milliseconds. Default: 10 000.
   */
  readyTimeoutMs?: number;
}

/**
 * How many replicas must confirm a write (`WAIT numReplicas timeout` after the claim and after
 * the completion or not-replayable mark, on the connection that wrote). A write they do not
 * confirm in time fails the store call: a claim is then released again and answered 503; a
 * completion stays on the primary, and the module logs the failure (the client has its response
 * already). `WAIT` narrows the loss on failover; Redis does not promise that the replica it
 * promotes is one that confirmed.
 */
export interface RedisDurabilityOptions {
  /** Replicas that must acknowledge the write: a positive integer. */
  replicas: number;
  /**
   * Longest wait for them, in milliseconds; must be below `commandTimeoutMs` (the client gives up
   * first otherwise). Every claim pays this wait while the replicas are missing, even one that
   * only reads (a replay): the `WAIT` travels with the script.
   */
  timeoutMs: number;
}

/** A Redis Cluster to connect to: its seed nodes and the ioredis `Cluster` options. */
export interface RedisClusterConnection {
  /** Some of the cluster's nodes; the client discovers the others. */
  nodes: ClusterNode[];
  /** ioredis `Cluster` options (fail-closed settings are applied over them). Default: none. */
  options?: ClusterOptions;
}

/**
 * Where Redis is, for a client the store creates: exactly one of `url`, `redis` (with `url`, they
 * combine as in `new Redis(url, redis)`) and `cluster`.
 */
export interface RedisConnectionOptions {
  /** `redis://` or `rediss://` URL of a standalone server. Default: unset. */
  url?: string;
  /**
   * ioredis options of a standalone server, or of a Sentinel group (`sentinels` and `name`).
   * Default: unset.
   */
  redis?: RedisOptions;
  /** A Redis Cluster. Default: unset. */
  cluster?: RedisClusterConnection;
  /**
   * Longest a command may go unanswered before it fails, in milliseconds (ioredis
   * `commandTimeout`). Keep it below the module's `storeTimeoutMs`, so that the store itself
   * fails first and undoes a claim that timed out. Default: 1 000.
   */
  commandTimeoutMs?: number;
}

/** Options of `redisStore()`: where Redis is, and how the store uses it. */
export interface RedisStoreOptions extends RedisConnectionOptions, RedisIdempotencyStoreOptions {}

/** Defaults of the Redis store's options. */
export const REDIS_STORE_DEFAULTS = {
  keyPrefix: 'idempotency:',
  commandTimeoutMs: 1000,
  readyTimeoutMs: 10_000,
} as const;

/** `durability` validated, or `undefined` when unset. */
export function resolveDurability(
  durability: RedisDurabilityOptions | undefined,
): RedisDurabilityOptions | undefined {
  if (durability === undefined) {
    return undefined;
  }
  const { replicas, timeoutMs } = durability;
  if (!Number.isInteger(replicas) || replicas <= 0) {
    throw new Error(
      `nestjs-idempotency: durability.replicas must be a positive integer, got ${replicas}.`,
    );
  }
  // WAIT 0 would wait forever: the timeout must be a positive number of milliseconds.
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new Error(
      `nestjs-idempotency: durability.timeoutMs must be a positive number, got ${timeoutMs}.`,
    );
  }
  return { replicas, timeoutMs: Math.ceil(timeoutMs) };
}

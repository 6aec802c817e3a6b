import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import type { Cluster, Redis } from 'ioredis';
import type { IdempotencyStoreProvider } from '../store/idempotency-store.definition';
import { createRedisClient } from './redis-client';
import { RedisIdempotencyStore } from './redis-idempotency.store';
import {
  REDIS_STORE_DEFAULTS,
  type RedisStoreOptions,
  resolveDurability,
} from './redis-store.options';

/** The options of the module's `redisStore()`. */
const REDIS_STORE_OPTIONS = Symbol('nestjs-idempotency:redis-store-options');

/** The client `redisStore()` creates: owned by the module, closed as the application shuts down. */
@Injectable()
class RedisStoreConnection implements OnApplicationShutdown {
  readonly client: Redis | Cluster;

  constructor(@Inject(REDIS_STORE_OPTIONS) options: RedisStoreOptions) {
    this.client = createRedisClient(options);
    // Errors reach the store's callers as failed commands; ioredis also emits each one, and an
    // 'error' event without a listener would end the process.
    this.client.on('error', () => undefined);
  }

  async onApplicationShutdown(): Promise<void> {
    // QUIT fails at once on a dead connection (no offline queue); then just drop it.
    await this.client.quit().catch(() => this.client.disconnect());
  }
}

/**
 * The Redis store, for `IdempotencyModule.forRoot({ store: redisStore({ url }) })`. It creates
 * its own ioredis client from the connection options, with the fail-closed settings of
 * `createRedisClient()` (no offline queue, `commandTimeoutMs` on every command, no command sent
 * twice, reconnection by itself), and closes it when the application shuts down. To share a
 * client the application owns, pass `new RedisIdempotencyStore(client)` as `store` instead.
 *
 * Lease mode only: a `transactional: true` route needs the PostgreSQL store.
 *
 * @example
 * ```ts
 * IdempotencyModule.forRoot({ store: redisStore({ url: 'redis://localhost:6379' }) });
 * IdempotencyModule.forRoot({
 *   store: redisStore({
 *     cluster: { nodes: [{ host: '10.0.0.1', port: 6379 }] },
 *     durability: { replicas: 1, timeoutMs: 200 },
 *   }),
 * });
 * ```
 */
export function redisStore(options: RedisStoreOptions): IdempotencyStoreProvider {
  // Mistakes in the options surface as the module is built, before any connection is opened.
  const durability = resolveDurability(options.durability);
  const commandTimeoutMs = options.commandTimeoutMs ?? REDIS_STORE_DEFAULTS.commandTimeoutMs;
  if (durability && durability.timeoutMs >= commandTimeoutMs) {
    throw new Error(
      `nestjs-idempotency: durability.timeoutMs (${durability.timeoutMs}) must be below commandTimeoutMs (${commandTimeoutMs}): the client would give up on WAIT first.`,
    );
  }
  return {
    useFactory: (
      _module,
      connection: RedisStoreConnection,
      { keyPrefix, durability, readyTimeoutMs }: RedisStoreOptions,
    ) => new RedisIdempotencyStore(connection.client, { keyPrefix, durability, readyTimeoutMs }),
    inject: [RedisStoreConnection, REDIS_STORE_OPTIONS],
    // The options travel as a provider's value, not only in the factory's closure: Nest tells two
    // registrations apart by their providers, and a function's closure does not show in them.
    providers: [{ provide: REDIS_STORE_OPTIONS, useValue: { ...options } }, RedisStoreConnection],
  };
}

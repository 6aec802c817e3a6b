export { redisStore } from './redis-store';
export { RedisIdempotencyStore } from './redis-idempotency.store';
export { createRedisClient } from './redis-client';
export { RedisReplicationError } from './redis-script-runner';
export {
  REDIS_STORE_DEFAULTS,
  type RedisClusterConnection,
  type RedisConnectionOptions,
  type RedisDurabilityOptions,
  type RedisIdempotencyStoreOptions,
  type RedisStoreOptions,
} from './redis-store.options';

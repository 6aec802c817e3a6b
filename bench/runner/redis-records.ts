import type { Redis } from 'ioredis';
import { redisKeyName } from '../../lib/redis/redis-key';
import { REDIS_STORE_DEFAULTS } from '../../lib/redis/redis-store.options';
import type { IdempotencyRecords } from './exactly-once';

/** Keys read per pipeline: a run sends some thousands. */
const BATCH = 1_000;

/**
 * The Redis store's records (one string per key, named as the store names it, with the default
 * prefix): stuck = still in flight (first byte `i`). One name per key, so no second record can
 * exist.
 */
export function ourRedisRecords(client: Redis): IdempotencyRecords {
  return {
    async inspect(keys) {
      const states = await readAll(client, keys, (pipeline, key) =>
        pipeline.getrange(redisKeyName(REDIS_STORE_DEFAULTS.keyPrefix, '', key), 0, 0),
      );
      return { stuck: states.filter((state) => state === 'i').length, duplicateRecords: 0 };
    },
  };
}

/**
 * `@node-idempotency/nestjs`'s records: one string per method, URL and key
 * (`node-idempotency:POST:<url>:<key>`), JSON with `status` `IN_PROGRESS` until the response is
 * stored. One name per key and route, so no second record can exist.
 */
export function peerRedisRecords(client: Redis, url: string): IdempotencyRecords {
  return {
    async inspect(keys) {
      const values = await readAll(client, keys, (pipeline, key) =>
        pipeline.get(`node-idempotency:POST:${url}:${key}`),
      );
      const stuck = values.filter(
        (value) =>
          value !== null && (JSON.parse(value) as { status?: string }).status === 'IN_PROGRESS',
      ).length;
      return { stuck, duplicateRecords: 0 };
    },
  };
}

async function readAll(
  client: Redis,
  keys: readonly string[],
  read: (pipeline: ReturnType<Redis['pipeline']>, key: string) => unknown,
): Promise<(string | null)[]> {
  const values: (string | null)[] = [];
  for (let start = 0; start < keys.length; start += BATCH) {
    const pipeline = client.pipeline();
    keys.slice(start, start + BATCH).forEach((key) => read(pipeline, key));
    for (const [error, value] of (await pipeline.exec()) ?? []) {
      if (error) {
        throw error;
      }
      values.push(value as string | null);
    }
  }
  return values;
}

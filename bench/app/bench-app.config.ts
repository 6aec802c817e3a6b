/** The idempotency table of the apps that leave `tableName` at the library's default. */
export const SINGLE_IDEMPOTENCY_TABLE = 'idempotency_records';

/** The idempotency table of the app with `partitioned` set, next to the single one. */
export const PARTITIONED_IDEMPOTENCY_TABLE = 'idempotency_records_partitioned';

/** One Nest application of the bench process. */
export interface BenchAppInstance {
  /**
   * How the runner names it (`main`, `global`, `pass`, `full`, `part`, `pool`, `cls`, `redis`,
   * `peer`).
   */
  name: string;
  databaseUrl: string;
  /** Registers the interceptor for every route (`useGlobalInterceptor`). */
  globalInterceptor: boolean;
  /** Registers a global interceptor that does nothing (`PassThroughInterceptor`). */
  passThroughInterceptor: boolean;
  /**
   * Keeps its keys in `PARTITIONED_IDEMPOTENCY_TABLE`, partitioned by expiry (the `partitioning`
   * option), instead of `SINGLE_IDEMPOTENCY_TABLE`.
   */
  partitioned: boolean;
  /**
   * Puts the lease routes on `pgPoolStore()`, on the pool the handlers write through (the
   * transactional routes stay on `postgresStore()`), as an app on Drizzle or Kysely would.
   */
  pgPool: boolean;
  /**
   * Puts every route on `pgPoolStore()` as `pgPool` does, its transactional routes inside
   * `@nestjs-cls/transactional` transactions (the TypeORM adapter) instead of `postgresStore()`'s.
   */
  clsTransactions: boolean;
  /**
   * Lease-mode keys on Redis: `ours` puts the module's lease routes on `redisStore()` (its
   * transactional routes stay on PostgreSQL, `transactionalStore`); `peer` is the other app, on
   * `@node-idempotency/nestjs` with its Redis adapter. `null`: the PostgreSQL store only.
   */
  redis: { url: string; package: 'ours' | 'peer' } | null;
}

/** What the runner asks the bench process to serve. */
export interface BenchProcessConfig {
  adapter: 'express' | 'fastify';
  /** Size of each application's pg pool. */
  poolSize: number;
  /** Created in this order (the first one on a database runs its migrations). */
  instances: BenchAppInstance[];
}

/** The environment variable carrying the `BenchProcessConfig`, as JSON. */
export const BENCH_PROCESS_ENV = 'BENCH_PROCESS_CONFIG';

export function readBenchProcessConfig(env: NodeJS.ProcessEnv = process.env): BenchProcessConfig {
  const text = env[BENCH_PROCESS_ENV];
  if (!text) {
    throw new Error(`${BENCH_PROCESS_ENV} is unset: the bench runner starts this process.`);
  }
  const config = JSON.parse(text) as Partial<BenchProcessConfig>;
  const valid =
    (config.adapter === 'express' || config.adapter === 'fastify') &&
    Number.isSafeInteger(config.poolSize) &&
    (config.poolSize ?? 0) > 0 &&
    Array.isArray(config.instances) &&
    config.instances.every(
      (instance) =>
        typeof instance.name === 'string' &&
        typeof instance.databaseUrl === 'string' &&
        typeof instance.globalInterceptor === 'boolean' &&
        typeof instance.passThroughInterceptor === 'boolean' &&
        typeof instance.partitioned === 'boolean' &&
        typeof instance.pgPool === 'boolean' &&
        typeof instance.clsTransactions === 'boolean' &&
        (instance.redis === null ||
          (typeof instance.redis?.url === 'string' &&
            (instance.redis.package === 'ours' || instance.redis.package === 'peer'))),
    );
  if (!valid) {
    throw new Error(`${BENCH_PROCESS_ENV} is not a valid bench process configuration.`);
  }
  return config as BenchProcessConfig;
}

/** The sample app's settings, read from the environment (see the README's table). */
export interface SampleAppConfig {
  port: number;
  databaseUrl: string | undefined;
  httpAdapter: 'express' | 'fastify';
  paymentLatencyMs: number;
  idempotencyTtlMs: number;
  idempotencyLockTimeoutMs: number;
  /** Interval of the purge of expired keys; `0` turns it off. */
  idempotencyPurgeIntervalMs: number;
}

export function readConfig(env: NodeJS.ProcessEnv = process.env): SampleAppConfig {
  const adapter = env.HTTP_ADAPTER ?? 'express';
  if (adapter !== 'express' && adapter !== 'fastify') {
    throw new Error(`HTTP_ADAPTER must be "express" or "fastify", got "${adapter}".`);
  }
  return {
    port: integer(env, 'PORT', 3000),
    databaseUrl: env.DATABASE_URL || undefined,
    httpAdapter: adapter,
    paymentLatencyMs: integer(env, 'PAYMENT_LATENCY_MS', 0),
    idempotencyTtlMs: integer(env, 'IDEMPOTENCY_TTL_MS', 86_400_000),
    idempotencyLockTimeoutMs: integer(env, 'IDEMPOTENCY_LOCK_TIMEOUT_MS', 60_000),
    idempotencyPurgeIntervalMs: integer(env, 'IDEMPOTENCY_PURGE_INTERVAL_MS', 60_000),
  };
}

function integer(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') {
    return fallback;
  }
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new Error(`${name} must be a non-negative integer, got "${raw}".`);
  }
  return value;
}

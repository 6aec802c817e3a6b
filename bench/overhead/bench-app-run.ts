import { BenchAppModule } from '../app/bench-app.module';
import { arg } from './injected-app';

/*
 * What the tools that measure the bench app's routes (postgres.ts, redis.ts) share. Apart from
 * injected-app.ts so that main.ts, on the in-memory store, does not load the bench app and the
 * libraries it imports.
 */

/** The order the bench app's routes take (bench/app), as the full bench sends it. */
export const ORDER_BODY = JSON.stringify({ customer: 'bench', amount: 4200, currency: 'EUR' });

/** The options of a tool that measures the bench app's routes. */
export interface RunOptions {
  platform: string;
  rounds: number;
  requests: number;
  concurrency: number;
  /** Scenario names, comma-separated; empty: all. */
  only: string;
}

export function readRunOptions(): RunOptions {
  return {
    platform: arg('platform', 'express'),
    rounds: Number(arg('rounds', '6')),
    requests: Number(arg('requests', '2000')),
    concurrency: Number(arg('concurrency', '16')),
    only: arg('only', ''),
  };
}

/**
 * The bench app as the `main` app of the full bench (no global interceptor, one table), its lease
 * routes on Redis when `redisUrl` is given.
 */
export function benchApp(databaseUrl: string, redisUrl?: string) {
  return BenchAppModule.register({
    databaseUrl,
    globalInterceptor: false,
    passThroughInterceptor: false,
    partitioned: false,
    pgPool: false,
    clsTransactions: false,
    poolSize: 32,
    redisUrl,
  });
}

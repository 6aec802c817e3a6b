import 'reflect-metadata';
import { PeerAppModule } from '../app/peer-app.module';
import { startBenchPostgres } from '../runner/bench-postgres';
import { type BenchRedis, redisServerBinary, startBenchRedis } from '../runner/bench-redis';
import { ORDER_BODY, benchApp, readRunOptions } from './bench-app-run';
import {
  type Scenario,
  type Send,
  measureRounds,
  selected,
  printResults,
  startInjected,
} from './injected-app';

/*
 * The app process's CPU per request with keys on Redis, ours against `@node-idempotency/nestjs`
 * (the bench's side-by-side, bench/app/peer-app.module.ts) in the same process and the same
 * rounds: requests injected into the platform as in main.ts, several in flight, on a real Redis
 * and PostgreSQL (the route's INSERT). CPU per request is steadier on a shared machine than
 * throughput, so this is where a difference of a few percent between the two can be seen, and a
 * profile of one scenario (--only) shows where it goes. The peer app has no plain route: its
 * scenarios' excess is also shown over ours, which runs the same insert.
 *
 *   npm run bench:overhead:redis -- [--platform=express|fastify] [--rounds=N] [--requests=N]
 *     [--concurrency=N] [--only=plain|new|peer-new|replay|peer-replay]
 *   DATABASE_URL / REDIS_URL to use those servers; else an embedded PostgreSQL and a
 *   redis-server from PATH on a free port are started.
 */

/** Finished keys of each app, replayed round-robin. */
const REPLAY_KEYS = 500;

async function main(): Promise<void> {
  const { platform, rounds, requests, concurrency, only } = readRunOptions();
  const redis = await redisServer();
  let server: Awaited<ReturnType<typeof startBenchPostgres>> | undefined;
  try {
    server = await startBenchPostgres(process.env.DATABASE_URL || undefined);
    const ours = await startInjected(benchApp(server.urls.main, redis.url), platform, ORDER_BODY);
    let cpuUs: Map<string, number[]>;
    try {
      const peer = await startInjected(
        PeerAppModule.register({
          databaseUrl: server.urls.main,
          redisUrl: redis.url,
          poolSize: 32,
        }),
        platform,
        ORDER_BODY,
      );
      try {
        cpuUs = await measure(ours.send, peer.send, only, { rounds, requests, concurrency });
      } finally {
        await peer.app.close();
      }
    } finally {
      await ours.app.close();
    }
    printResults(
      `${platform} on Redis, ${rounds} rounds of ${requests} requests, ${concurrency} in flight`,
      cpuUs,
      'plain',
    );
  } finally {
    await server?.stop();
    await redis.stop();
  }
}

async function redisServer(): Promise<Pick<BenchRedis, 'url' | 'stop'>> {
  if (process.env.REDIS_URL) {
    return { url: process.env.REDIS_URL, stop: () => Promise.resolve() };
  }
  const binary = redisServerBinary();
  if (!binary) {
    throw new Error('No REDIS_URL and no redis-server on PATH.');
  }
  return startBenchRedis(binary);
}

/** Makes the replayed keys on both apps, then measures the scenarios (all, or those in `only`). */
async function measure(
  ours: Send,
  peer: Send,
  only: string,
  options: { rounds: number; requests: number; concurrency: number },
): Promise<Map<string, number[]>> {
  const run = `${process.pid}-${Date.now()}`;
  for (let i = 0; i < REPLAY_KEYS; i++) {
    await ours('/lease', `ours-${run}-${i}`);
    await peer('/lease', `peer-${run}-${i}`);
  }
  const all: Scenario[] = [
    { name: 'plain', request: (_, i) => ours('/plain', `plain-${run}-${i}`) },
    { name: 'new', request: (_, i) => ours('/lease', `new-ours-${run}-${i}`) },
    { name: 'peer-new', request: (_, i) => peer('/lease', `new-peer-${run}-${i}`) },
    { name: 'replay', request: (_, i) => ours('/lease', `ours-${run}-${i % REPLAY_KEYS}`) },
    { name: 'peer-replay', request: (_, i) => peer('/lease', `peer-${run}-${i % REPLAY_KEYS}`) },
  ];
  const scenarios = selected(all, only);
  return measureRounds(scenarios, ours, options);
}

void main();

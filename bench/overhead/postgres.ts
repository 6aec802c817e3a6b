import 'reflect-metadata';
import { startBenchPostgres } from '../runner/bench-postgres';
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
 * The app process's CPU per request on PostgreSQL, without HTTP sockets: the bench app's routes
 * (bench/app: one INSERT through TypeORM, plain, in lease mode and in transactional mode) on a
 * real server, requests injected into the platform as in main.ts, several in flight. Against the
 * full bench it leaves out the HTTP parser and the sockets to the client, which every scenario
 * pays alike, so the differences between scenarios stand out; the socket to PostgreSQL is still
 * there, and a profile of one scenario (--only) shows where its CPU goes.
 *
 *   npm run bench:overhead:pg -- [--platform=express|fastify] [--rounds=N] [--requests=N]
 *     [--concurrency=N] [--only=plain|replay-lease|replay-tx|lease-new|tx-new]
 *   DATABASE_URL=postgres://... to use that server (a database is created and dropped); else an
 *   embedded PostgreSQL is started.
 */

/** Finished keys of each idempotent route, replayed round-robin. */
const REPLAY_KEYS = 500;

async function main(): Promise<void> {
  const { platform, rounds, requests, concurrency, only } = readRunOptions();
  const server = await startBenchPostgres(process.env.DATABASE_URL || undefined);
  try {
    const { app, send } = await startInjected(benchApp(server.urls.main), platform, ORDER_BODY);
    let cpuUs: Map<string, number[]>;
    try {
      cpuUs = await measure(send, only, { rounds, requests, concurrency });
    } finally {
      await app.close();
    }
    printResults(
      `${platform} on PostgreSQL, ${rounds} rounds of ${requests} requests, ${concurrency} in flight`,
      cpuUs,
      'plain',
    );
  } finally {
    await server.stop();
  }
}

/** Makes the replayed keys, then measures the scenarios (all, or those named in `only`). */
async function measure(
  send: Send,
  only: string,
  options: { rounds: number; requests: number; concurrency: number },
): Promise<Map<string, number[]>> {
  const run = `${process.pid}-${Date.now()}`;
  for (let i = 0; i < REPLAY_KEYS; i++) {
    await send('/lease', `lease-${run}-${i}`);
    await send('/tx', `tx-${run}-${i}`);
  }
  const all: Scenario[] = [
    { name: 'plain', request: (s, i) => s('/plain', `plain-${run}-${i}`) },
    { name: 'replay-lease', request: (s, i) => s('/lease', `lease-${run}-${i % REPLAY_KEYS}`) },
    { name: 'replay-tx', request: (s, i) => s('/tx', `tx-${run}-${i % REPLAY_KEYS}`) },
    { name: 'lease-new', request: (s, i) => s('/lease', `new-lease-${run}-${i}`) },
    { name: 'tx-new', request: (s, i) => s('/tx', `new-tx-${run}-${i}`) },
  ];
  const scenarios = selected(all, only);
  return measureRounds(scenarios, send, options);
}

void main();

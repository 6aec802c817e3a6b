import 'reflect-metadata';
import { Body, Controller, Module, Post } from '@nestjs/common';
import { IdempotencyModule, Idempotent } from '../../lib';
import { InMemoryIdempotencyStore } from '../../lib/testing';
import {
  type Scenario,
  arg,
  measureRounds,
  printResults,
  selected,
  startInjected,
} from './injected-app';

/*
 * The module's own CPU per request, with no database and no network: one process, requests
 * injected into the HTTP platform (light-my-request), the same route with and without
 * `@Idempotent()` on the in-memory store. What is left above the plain route is the interceptor,
 * the key and fingerprint, the store contract and the response capture: the part of a request's
 * CPU that no store choice changes. Rounds of each scenario are interleaved, and medians of the
 * rounds compared, so the machine's load shifts them alike. (postgres.ts: the same on PostgreSQL.)
 *
 *   npm run bench:overhead -- [--platform=express|fastify] [--rounds=N] [--requests=N]
 *     [--only=plain|'new key'|replay] (one scenario, for a CPU profile of it alone)
 */

@Controller()
class OverheadController {
  @Post('plain')
  plain(@Body() order: { customer: string; amount: number }) {
    return { id: 1, ...order };
  }

  @Post('idempotent')
  @Idempotent()
  idempotent(@Body() order: { customer: string; amount: number }) {
    return { id: 1, ...order };
  }
}

@Module({
  imports: [IdempotencyModule.forRoot({ store: new InMemoryIdempotencyStore() })],
  controllers: [OverheadController],
})
class OverheadModule {}

const BODY = JSON.stringify({ customer: 'overhead', amount: 42 });

async function main(): Promise<void> {
  const platform = arg('platform', 'express');
  const rounds = Number(arg('rounds', '10'));
  const requests = Number(arg('requests', '3000'));
  const { app, send } = await startInjected(OverheadModule, platform, BODY);
  const run = `${process.pid}-${Date.now()}`;
  if ((await send('/idempotent', `replayed-${run}`)) !== 201) {
    throw new Error('the idempotent route did not answer 201');
  }
  const only = arg('only', '');
  const all: Scenario[] = [
    { name: 'plain', request: (s) => s('/plain') },
    { name: 'new key', request: (s, i) => s('/idempotent', `new-${run}-${i}`) },
    { name: 'replay', request: (s) => s('/idempotent', `replayed-${run}`) },
  ];
  const scenarios = selected(all, only);
  const cpuUs = await measureRounds(scenarios, send, { rounds, requests, concurrency: 1 });
  await app.close();
  printResults(`${platform}, ${rounds} rounds of ${requests} requests`, cpuUs, 'plain');
}

void main();

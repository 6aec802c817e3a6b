import 'reflect-metadata';
import { Body, Controller, type INestApplication, Module, Post } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { inject } from 'light-my-request';
import { performance } from 'node:perf_hooks';
import { IdempotencyModule, Idempotent } from '../../lib';
import { InMemoryIdempotencyStore } from '../../lib/testing';

/*
 * The module's own CPU per request, with no database and no network: one process, requests
 * injected into the HTTP platform (light-my-request), the same route with and without
 * `@Idempotent()` on the in-memory store. What is left above the plain route is the interceptor,
 * the key and fingerprint, the store contract and the response capture: the part of a request's
 * CPU that no store choice changes. Rounds of each scenario are interleaved, and medians of the
 * rounds compared, so the machine's load shifts them alike.
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

type Send = (url: string, key?: string) => Promise<number>;

const BODY = JSON.stringify({ customer: 'overhead', amount: 42 });

async function start(platform: string): Promise<{ app: INestApplication; send: Send }> {
  const app = await NestFactory.create(
    OverheadModule,
    platform === 'fastify' ? new FastifyAdapter() : new ExpressAdapter(),
    { logger: false },
  );
  await app.init();
  const instance = app.getHttpAdapter().getInstance();
  if (platform === 'fastify') {
    await instance.ready();
  }
  const send: Send = async (url, key) => {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (key) {
      headers['idempotency-key'] = key;
    }
    const options = { method: 'POST' as const, url, headers, payload: BODY };
    const response =
      platform === 'fastify' ? await instance.inject(options) : await inject(instance, options);
    return response.statusCode;
  };
  return { app, send };
}

interface Scenario {
  name: string;
  request(send: Send, index: number): Promise<number>;
}

function arg(name: string, fallback: string): string {
  return process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? fallback;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function main(): Promise<void> {
  const platform = arg('platform', 'express');
  const rounds = Number(arg('rounds', '10'));
  const requests = Number(arg('requests', '3000'));
  const { app, send } = await start(platform);
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
  const scenarios = all.filter((scenario) => !only || scenario.name === only);
  const cpuUs = new Map(scenarios.map((s) => [s.name, [] as number[]]));
  let sent = 0;
  for (let round = -1; round < rounds; round++) {
    for (const scenario of scenarios) {
      const cpu = process.cpuUsage();
      const started = performance.now();
      for (let i = 0; i < requests; i++) {
        const status = await scenario.request(send, sent++);
        if (status !== 201) {
          throw new Error(`${scenario.name} answered ${status}`);
        }
      }
      const used = process.cpuUsage(cpu);
      // Round -1 warms the JIT up and is not kept.
      if (round >= 0) {
        cpuUs.get(scenario.name)!.push((used.user + used.system) / requests);
      }
      void started;
    }
  }
  await app.close();
  const plain = only ? 0 : median(cpuUs.get('plain')!);
  console.log(`${platform}, ${rounds} rounds of ${requests} requests, CPU us per request (median)`);
  for (const scenario of scenarios) {
    const values = cpuUs.get(scenario.name)!;
    const us = median(values);
    const spread = `${Math.min(...values).toFixed(0)}-${Math.max(...values).toFixed(0)}`;
    const above = scenario.name === 'plain' ? '' : `, module +${(us - plain).toFixed(1)} us`;
    console.log(`  ${scenario.name.padEnd(8)} ${us.toFixed(1)} us [${spread}]${above}`);
  }
}

void main();

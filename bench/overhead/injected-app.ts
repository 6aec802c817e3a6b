import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { inject } from 'light-my-request';

/** Sends one JSON POST to the app without a socket; resolves with the status. */
export type Send = (url: string, key?: string) => Promise<number>;

/** One way of sending requests, measured in rounds. */
export interface Scenario {
  name: string;
  request(send: Send, index: number): Promise<number>;
}

/**
 * Starts `module` on Express or Fastify without listening: requests are injected into the
 * platform (light-my-request, or Fastify's own `inject`), so no socket or HTTP parser is
 * measured, only what the platform, Nest and the route do.
 */
export async function startInjected(
  module: unknown,
  platform: string,
  body: string,
): Promise<{ app: INestApplication; send: Send }> {
  const app = await NestFactory.create(
    module as never,
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
    const options = { method: 'POST' as const, url, headers, payload: body };
    const response =
      platform === 'fastify' ? await instance.inject(options) : await inject(instance, options);
    return response.statusCode;
  };
  return { app, send };
}

/** The scenarios named in `only` (comma-separated), or all of them when it is empty. */
export function selected(all: readonly Scenario[], only: string): Scenario[] {
  const names = only.split(',');
  return all.filter((scenario) => !only || names.includes(scenario.name));
}

/** A `--name=value` argument, or `fallback`. */
export function arg(name: string, fallback: string): string {
  return process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? fallback;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/**
 * Runs the scenarios in interleaved rounds, in a rotating order (a first round warms up and is
 * not kept), each with
 * `concurrency` requests in flight, and returns the process's CPU per request of every round, in
 * microseconds. A status of 300 or more stops the run: a scenario that fails measures nothing.
 */
export async function measureRounds(
  scenarios: readonly Scenario[],
  send: Send,
  options: { rounds: number; requests: number; concurrency: number },
): Promise<Map<string, number[]>> {
  const cpuUs = new Map(scenarios.map((s) => [s.name, [] as number[]]));
  let sent = 0;
  for (let round = -1; round < options.rounds; round++) {
    // Each round starts one scenario later, so that what one leaves behind (garbage to collect)
    // does not always land on the same next one.
    const start = (round + 1) % scenarios.length;
    for (const scenario of [...scenarios.slice(start), ...scenarios.slice(0, start)]) {
      const cpu = process.cpuUsage();
      let started = 0;
      const worker = async () => {
        while (started < options.requests) {
          started++;
          const status = await scenario.request(send, sent++);
          if (status >= 300) {
            throw new Error(`${scenario.name} answered ${status}`);
          }
        }
      };
      await Promise.all(Array.from({ length: options.concurrency }, worker));
      const used = process.cpuUsage(cpu);
      if (round >= 0) {
        cpuUs.get(scenario.name)!.push((used.user + used.system) / options.requests);
      }
    }
  }
  return cpuUs;
}

/** Prints each scenario's median CPU per request, its spread, and its excess over `baseline`. */
export function printResults(
  title: string,
  cpuUs: Map<string, number[]>,
  baseline: string | undefined,
): void {
  const base = baseline !== undefined && cpuUs.has(baseline) ? median(cpuUs.get(baseline)!) : null;
  console.log(`${title}, CPU us per request (median [lowest-highest] over the rounds)`);
  for (const [name, values] of cpuUs) {
    const us = median(values);
    const spread = `${Math.min(...values).toFixed(0)}-${Math.max(...values).toFixed(0)}`;
    const above =
      base === null || name === baseline
        ? ''
        : `, ${us - base >= 0 ? '+' : ''}${(us - base).toFixed(1)} us (${(us / base).toFixed(2)}x)`;
    console.log(`  ${name.padEnd(13)} ${us.toFixed(1).padStart(7)} us [${spread}]${above}`);
  }
}

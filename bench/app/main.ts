import 'reflect-metadata';
import { countPgQueries } from './query-counter';
import type { DynamicModule, INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import type { AddressInfo } from 'node:net';
import { PerformanceObserver } from 'node:perf_hooks';
import { type BenchProcessConfig, readBenchProcessConfig } from './bench-app.config';
import { type AppMessage, isStatsRequest } from './bench-app.messages';
import { BenchAppModule } from './bench-app.module';
import { PeerAppModule } from './peer-app.module';

/**
 * Entry of the bench process, forked by the runner (bench/main.ts) so that the load generator does
 * not share its event loop. It hosts every bench application (with and without the global
 * interceptor, on the empty and the pre-filled database, on the partitioned table, on Redis, and
 * the peer package's app on Redis) in one process: they share their code, so each is as warm as
 * the busiest, and their costs compare. Each listens on a free port of 127.0.0.1; the ports go to
 * the runner over IPC, which may then ask for counters. Closes on SIGTERM or when the runner goes
 * away.
 */
async function main(): Promise<void> {
  const queries = countPgQueries();
  let gcMs = 0;
  new PerformanceObserver((list) => {
    gcMs += list.getEntries().reduce((total, entry) => total + entry.duration, 0);
  }).observe({ entryTypes: ['gc'] });
  const config = readBenchProcessConfig();
  const apps: INestApplication[] = [];
  const ports: Record<string, number> = {};
  for (const instance of config.instances) {
    const {
      databaseUrl,
      globalInterceptor,
      passThroughInterceptor,
      partitioned,
      pgPool,
      clsTransactions,
      redis,
    } = instance;
    const { poolSize } = config;
    const module =
      redis?.package === 'peer'
        ? PeerAppModule.register({ databaseUrl, redisUrl: redis.url, poolSize })
        : BenchAppModule.register({
            databaseUrl,
            globalInterceptor,
            passThroughInterceptor,
            partitioned,
            pgPool,
            clsTransactions,
            redisUrl: redis?.url,
            poolSize,
          });
    const app = await createApp(config, module);
    apps.push(app);
    await app.listen(0, '127.0.0.1');
    ports[instance.name] = (app.getHttpServer().address() as AddressInfo).port;
  }

  const send = (message: AppMessage) => process.send?.(message);
  process.on('message', (message: unknown) => {
    if (isStatsRequest(message)) {
      const cpu = process.cpuUsage();
      send({
        type: 'stats',
        id: message.id,
        queries: queries(),
        cpuUserUs: cpu.user,
        cpuSystemUs: cpu.system,
        gcMs,
      });
    }
  });
  let closing = false;
  const close = async () => {
    if (closing) {
      return;
    }
    closing = true;
    await Promise.all(apps.map((app) => app.close()));
    process.exit(0);
  };
  process.once('disconnect', () => void close());
  process.once('SIGTERM', () => void close());
  send({ type: 'ready', ports });
}

function createApp(config: BenchProcessConfig, module: DynamicModule): Promise<INestApplication> {
  return config.adapter === 'fastify'
    ? NestFactory.create(module, new FastifyAdapter(), { logger: false })
    : NestFactory.create(module, new ExpressAdapter(), { logger: false });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});

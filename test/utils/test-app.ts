import type { DynamicModule, INestApplication, Type } from '@nestjs/common';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { DataSource } from 'typeorm';

export type AdapterName = 'express' | 'fastify';

/** Every e2e suite runs once per platform: `describe.each(ADAPTERS)`. */
export const ADAPTERS: AdapterName[] = ['express', 'fastify'];

/** A Nest app under test, listening on an ephemeral port. */
export interface TestApp {
  app: INestApplication;
  http(): ReturnType<typeof request>;
  close(): Promise<void>;
}

export async function createTestApp(
  adapter: AdapterName,
  module: Type | DynamicModule,
): Promise<TestApp> {
  const testingModule = await Test.createTestingModule({ imports: [module] }).compile();
  const app = testingModule.createNestApplication(
    adapter === 'fastify' ? new FastifyAdapter() : new ExpressAdapter(),
    { logger: false },
  );
  await app.init();
  if (adapter === 'fastify') {
    await (app.getHttpAdapter().getInstance() as { ready(): Promise<unknown> }).ready();
  }
  // Listening on a real port keeps HTTP real (and parallel requests truly parallel).
  await app.listen(0, '127.0.0.1');
  const url = await app.getUrl();
  return {
    app,
    http: () => request(url),
    close: () => app.close(),
  };
}

/**
 * Starts `module` expecting its start-up to fail with `message`. A failed start leaves the
 * TypeORM DataSource connected, which would outlive the test: it is closed here.
 */
export async function expectStartFailure(
  adapter: AdapterName,
  module: Type | DynamicModule,
  message: RegExp,
): Promise<void> {
  const testingModule = await Test.createTestingModule({ imports: [module] }).compile();
  const app = testingModule.createNestApplication(
    adapter === 'fastify' ? new FastifyAdapter() : new ExpressAdapter(),
    { logger: false },
  );
  try {
    await expect(app.init()).rejects.toThrow(message);
  } finally {
    await testingModule.get(DataSource).destroy();
  }
}

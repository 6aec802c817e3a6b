import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { AppModule, type ResolvedSampleAppConfig } from './app.module';
import {
  declareDeadLetterQueue,
  paymentsConsumerTransport,
} from './payments-consumer/payments-consumer.transport';

/**
 * Builds the sample app on the configured HTTP platform, initialised but not listening. With a
 * payments consumer, its transport is connected too (started by `app.startAllMicroservices()`).
 */
export async function createSampleApp(
  config: ResolvedSampleAppConfig,
  options: { logger?: false } = {},
): Promise<INestApplication> {
  const module = AppModule.register(config);
  const app =
    config.httpAdapter === 'fastify'
      ? await NestFactory.create(module, new FastifyAdapter(), options)
      : await NestFactory.create(module, new ExpressAdapter(), options);
  if (config.paymentsConsumer) {
    await declareDeadLetterQueue(config.paymentsConsumer);
    // The app's global enhancers stay HTTP-only: its guard (DemoAuthGuard) reads HTTP headers.
    app.connectMicroservice(paymentsConsumerTransport(config.paymentsConsumer));
  }
  await app.init();
  if (config.httpAdapter === 'fastify') {
    await (app.getHttpAdapter().getInstance() as { ready(): Promise<unknown> }).ready();
  }
  return app;
}

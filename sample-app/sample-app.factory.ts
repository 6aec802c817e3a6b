import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { AppModule, type ResolvedSampleAppConfig } from './app.module';
import {
  declareDeadLetterQueue,
  paymentsConsumerTransport,
} from './payments-consumer/payments-consumer.transport';
import {
  checkJetStream,
  paymentsJetStreamTransport,
} from './payments-consumer/payments-consumer.jetstream';

/**
 * Builds the sample app on the configured HTTP platform, initialised but not listening. With a
 * payments consumer, its transport is connected too (started by `app.startAllMicroservices()`).
 */
export async function createSampleApp(
  config: ResolvedSampleAppConfig,
  options: { logger?: false } = {},
): Promise<INestApplication> {
  if (config.paymentsConsumer) {
    // Before anything else: without a broker, the start fails at once, and says why.
    if (config.paymentsConsumer.transport === 'nats') {
      await checkJetStream(config.paymentsConsumer);
    } else {
      await declareDeadLetterQueue(config.paymentsConsumer);
    }
  }
  const module = AppModule.register(config);
  const app =
    config.httpAdapter === 'fastify'
      ? await NestFactory.create(module, new FastifyAdapter(), options)
      : await NestFactory.create(module, new ExpressAdapter(), options);
  if (config.paymentsConsumer) {
    // Not `inheritAppConfig`: the app's global guard (DemoAuthGuard) reads HTTP headers, and
    // would throw on a message, leaving it unacknowledged.
    app.connectMicroservice(
      config.paymentsConsumer.transport === 'nats'
        ? paymentsJetStreamTransport(config.paymentsConsumer)
        : paymentsConsumerTransport(config.paymentsConsumer),
    );
  }
  await app.init();
  if (config.httpAdapter === 'fastify') {
    await (app.getHttpAdapter().getInstance() as { ready(): Promise<unknown> }).ready();
  }
  return app;
}

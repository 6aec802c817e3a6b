import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { type PaymentProviderConfig, PaymentProviderModule } from './payment-provider.module';

/** Builds the payment provider (on Express: it is another service), initialised, not listening. */
export async function createPaymentProvider(
  config: PaymentProviderConfig,
  options: { logger?: false } = {},
): Promise<INestApplication> {
  const app = await NestFactory.create(
    PaymentProviderModule.register(config),
    new ExpressAdapter(),
    options,
  );
  await app.init();
  return app;
}

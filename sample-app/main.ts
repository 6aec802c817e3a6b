import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { readConfig } from './config';
import { type EmbeddedDatabase, startEmbeddedPostgres } from './database/embedded-postgres';
import { testHooksIn } from './payment-provider/payment-provider.module';
import { type ProviderBeside, startProviderBeside } from './payment-provider/provider-beside';
import { closeOnSignals, exitOnStartFailure } from './process-lifecycle';
import { createSampleApp } from './sample-app.factory';

/** The SQLSTATE of a role that may not create the provider's database. */
const INSUFFICIENT_PRIVILEGE = '42501';

async function main(): Promise<void> {
  const logger = new Logger('SampleApp');
  const config = readConfig();
  let embedded: EmbeddedDatabase | undefined;
  let databaseUrl = config.databaseUrl;
  if (!databaseUrl) {
    logger.log('DATABASE_URL is unset: starting an embedded PostgreSQL for this run.');
    embedded = await startEmbeddedPostgres();
    databaseUrl = embedded.url;
  }
  let provider: ProviderBeside | undefined;
  let paymentProviderUrl = config.paymentProviderUrl;
  if (!paymentProviderUrl) {
    try {
      provider = await startProviderBeside(databaseUrl, {
        idempotencyLockTimeoutMs: config.idempotencyLockTimeoutMs,
        idempotencyTtlMs: config.idempotencyTtlMs,
        testHooks: testHooksIn(process.env),
      });
      paymentProviderUrl = provider.url;
      logger.log(`PAYMENT_PROVIDER_URL is unset: payment provider started on ${provider.url}.`);
    } catch (error) {
      // The other endpoints do not need it: a server where this user may not create the
      // provider's database still serves them. Anything else is a fault to see at once.
      if ((error as { code?: unknown }).code !== INSUFFICIENT_PRIVILEGE) {
        throw error;
      }
      logger.warn(
        `PAYMENT_PROVIDER_URL is unset and the payment provider could not start beside the app (${String(error)}): POST /orders answers 503 until PAYMENT_PROVIDER_URL is set.`,
      );
    }
  }
  const app = await createSampleApp({ ...config, databaseUrl, paymentProviderUrl });

  closeOnSignals(logger, async () => {
    await app.close();
    await provider?.app.close();
    await embedded?.stop();
  });

  if (config.paymentsConsumer) {
    // Before listening: a test (or a load balancer) that sees HTTP up may count on the consumer.
    await app.startAllMicroservices();
    const consumer = config.paymentsConsumer;
    logger.log(
      consumer.transport === 'nats'
        ? `Payments consumer on JetStream stream "${consumer.stream}" (subject "payments.requested").`
        : `Payments consumer on queue "${consumer.queue}" (dead letters: "${consumer.queue}.dead").`,
    );
  }

  // Express listens on every interface by default; Fastify only on localhost unless told.
  if (config.httpAdapter === 'fastify') {
    await app.listen(config.port, '0.0.0.0');
  } else {
    await app.listen(config.port);
  }
  logger.log(`Payments service on http://localhost:${config.port} (${config.httpAdapter}).`);
}

main().catch(exitOnStartFailure);

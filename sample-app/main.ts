import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { SampleConfigError, readConfig } from './config';
import { type EmbeddedDatabase, startEmbeddedPostgres } from './database/embedded-postgres';
import { EmbeddedPostgresError } from './database/embedded-postgres.error';
import { type ProviderBeside, startProviderBeside } from './payment-provider/provider-beside';
import { createSampleApp } from './sample-app.factory';

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
    provider = await startProviderBeside(databaseUrl, config);
    paymentProviderUrl = provider.url;
    logger.log(`PAYMENT_PROVIDER_URL is unset: payment provider started on ${provider.url}.`);
  }
  const app = await createSampleApp({ ...config, databaseUrl, paymentProviderUrl });

  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) {
      return;
    }
    closing = true;
    logger.log(`${signal}: closing.`);
    await app.close();
    await provider?.app.close();
    await embedded?.stop();
    process.exit(0);
  };
  process.once('SIGINT', () => void shutdown('SIGINT'));
  process.once('SIGTERM', () => void shutdown('SIGTERM'));

  // Express listens on every interface by default; Fastify only on localhost unless told.
  if (config.httpAdapter === 'fastify') {
    await app.listen(config.port, '0.0.0.0');
  } else {
    await app.listen(config.port);
  }
  logger.log(`Payments service on http://localhost:${config.port} (${config.httpAdapter}).`);
}

main().catch((error: unknown) => {
  // A known start-up failure is one line that says what to do; anything else keeps its stack.
  const known = error instanceof EmbeddedPostgresError || error instanceof SampleConfigError;
  console.error(known ? error.message : error);
  process.exit(1);
});

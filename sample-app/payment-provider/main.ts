import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { readConfig } from '../config';
import { type EmbeddedDatabase, startEmbeddedPostgres } from '../database/embedded-postgres';
import { closeOnSignals, exitOnStartFailure } from '../process-lifecycle';
import { createPaymentProvider } from './payment-provider.factory';
import { testHooksIn } from './payment-provider.module';

/**
 * The payment provider as a process of its own (`node dist/sample-app/payment-provider/main.js`):
 * `PORT` (default 3001), `DATABASE_URL` (its own database; unset, an embedded PostgreSQL), and
 * the sample app's `IDEMPOTENCY_TTL_MS` and `IDEMPOTENCY_LOCK_TIMEOUT_MS`; with
 * `PAYMENT_PROVIDER_TEST_HOOKS=true`, the test hooks.
 */
async function main(): Promise<void> {
  const logger = new Logger('PaymentProvider');
  const config = readConfig({ PORT: '3001', ...process.env });
  let embedded: EmbeddedDatabase | undefined;
  let databaseUrl = config.databaseUrl;
  if (!databaseUrl) {
    logger.log('DATABASE_URL is unset: starting an embedded PostgreSQL for this run.');
    embedded = await startEmbeddedPostgres();
    databaseUrl = embedded.url;
  }
  const app = await createPaymentProvider({
    databaseUrl,
    idempotencyLockTimeoutMs: config.idempotencyLockTimeoutMs,
    idempotencyTtlMs: config.idempotencyTtlMs,
    testHooks: testHooksIn(process.env),
  });

  closeOnSignals(logger, async () => {
    await app.close();
    await embedded?.stop();
  });

  await app.listen(config.port, '127.0.0.1');
  logger.log(`Payment provider on http://127.0.0.1:${config.port}.`);
}

main().catch(exitOnStartFailure);

import type { INestApplication } from '@nestjs/common';
import { freePort } from '../database/free-port';
import { PROVIDER_DATABASE, ensureDatabase } from './database/provider-database';
import { createPaymentProvider } from './payment-provider.factory';
import type { PaymentProviderConfig } from './payment-provider.module';

/** A payment provider running in this process, beside the sample app. */
export interface ProviderBeside {
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  url: string;
  app: INestApplication;
}

/**
 * Starts the payment provider in this process, on a free loopback port, with its database
 * (`payment_provider`, created if missing) on the server of `appDatabaseUrl`: `npm start` then
 * needs nothing else. A provider of its own process (`PAYMENT_PROVIDER_URL`) survives a crash of
 * the app; this one dies with it, and comes back with it.
 */
export async function startProviderBeside(
  appDatabaseUrl: string,
  settings: Omit<PaymentProviderConfig, 'databaseUrl'>,
): Promise<ProviderBeside> {
  const databaseUrl = await ensureDatabase(appDatabaseUrl, PROVIDER_DATABASE);
  const app = await createPaymentProvider({ ...settings, databaseUrl });
  const port = await freePort();
  await app.listen(port, '127.0.0.1');
  return { url: `http://127.0.0.1:${port}`, app };
}

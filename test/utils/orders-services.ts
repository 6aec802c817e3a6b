import { resolve } from 'node:path';
import { freePort } from '../../sample-app/database/free-port';
import type { OrdersCrashPoint } from '../../sample-app/config';
import { type SampleAppProcess, startSampleAppProcess } from './sample-app-process';
import type { AdapterName } from './test-app';
import { type TestDatabase, createTestDatabase } from './test-database';

/** The compiled payment provider's own entry (see SAMPLE_APP_ENTRY). */
export const PAYMENT_PROVIDER_ENTRY = resolve(
  process.cwd(),
  'dist/sample-app/payment-provider/main.js',
);

/** A boot runs the migrations and Nest's start-up; a busy 2-core machine needs room. */
const READY_TIMEOUT_MS = 60_000;

export interface OrdersServicesSettings {
  /** The lease of both services' keys: short, so that a retry after a crash takes over soon. */
  lockTimeoutMs: number;
  /** How long the sample app waits for the provider (`PAYMENT_PROVIDER_TIMEOUT_MS`). */
  providerTimeoutMs: number;
}

/**
 * The two services of `POST /orders` as real processes, each on a database of its own: the
 * payment provider, and sample apps that call it. Ready once `beforeAll` ran: one provider and
 * one sample app (which ran the migrations, so that others may boot side by side).
 */
export interface OrdersServices {
  appDb(): TestDatabase;
  providerDb(): TestDatabase;
  /** The provider started in `beforeAll`. */
  provider(): SampleAppProcess;
  /** The sample app started in `beforeAll`: the one retries go to. */
  app(): SampleAppProcess;
  /**
   * Starts one more sample app: set to crash at `crashAt`, calling another provider, or waiting
   * `providerTimeoutMs` for it instead of the settings' `providerTimeoutMs`.
   */
  startApp(options?: AppOptions): Promise<SampleAppProcess>;
  /** Starts one more provider on the provider's database, on `port` (default: a free one). */
  startProvider(port?: number): Promise<SampleAppProcess>;
}

export interface AppOptions {
  crashAt?: OrdersCrashPoint;
  providerUrl?: string;
  providerTimeoutMs?: number;
}

/** Registers the hooks that start the services for a describe block and kill them after it. */
export function useOrdersServices(
  adapter: AdapterName,
  settings: OrdersServicesSettings,
): OrdersServices {
  let appDb: TestDatabase | undefined;
  let providerDb: TestDatabase | undefined;
  let provider: SampleAppProcess | undefined;
  let app: SampleAppProcess | undefined;
  const children: SampleAppProcess[] = [];

  const ready = <T>(value: T | undefined): T => {
    if (value === undefined) {
      throw new Error('the orders services are started in beforeAll');
    }
    return value;
  };

  const startProvider = async (port?: number) => {
    const child = await startSampleAppProcess({
      entry: PAYMENT_PROVIDER_ENTRY,
      env: {
        DATABASE_URL: ready(providerDb).url,
        PORT: String(port ?? (await freePort())),
        IDEMPOTENCY_LOCK_TIMEOUT_MS: String(settings.lockTimeoutMs),
        // The test hook (`PUT /control/cards/:card`) is only registered with this set.
        PAYMENT_PROVIDER_TEST_HOOKS: 'true',
      },
      readyPath: '/charges',
      readyTimeoutMs: READY_TIMEOUT_MS,
    });
    children.push(child);
    return child;
  };

  const startApp = async (options: AppOptions = {}) => {
    const child = await startSampleAppProcess({
      env: {
        DATABASE_URL: ready(appDb).url,
        HTTP_ADAPTER: adapter,
        IDEMPOTENCY_LOCK_TIMEOUT_MS: String(settings.lockTimeoutMs),
        PAYMENT_PROVIDER_URL: options.providerUrl ?? ready(provider).url,
        PAYMENT_PROVIDER_TIMEOUT_MS: String(
          options.providerTimeoutMs ?? settings.providerTimeoutMs,
        ),
        ORDERS_CRASH_AT: options.crashAt ?? '',
      },
      readyTimeoutMs: READY_TIMEOUT_MS,
    });
    children.push(child);
    return child;
  };

  beforeAll(async () => {
    [appDb, providerDb] = await Promise.all([createTestDatabase(), createTestDatabase()]);
    // Two databases: the two boots (and their migrations) can run side by side. The provider's
    // port is picked right before its spawn, as startSampleAppProcess would; it stays unbound
    // for the provider's boot, which no choice made in the test can shorten.
    const port = await freePort();
    [provider, app] = await Promise.all([
      startProvider(port),
      startApp({ providerUrl: `http://127.0.0.1:${port}` }),
    ]);
  }, 2 * READY_TIMEOUT_MS);

  afterAll(async () => {
    await Promise.all(children.splice(0).map((child) => child.kill()));
    await Promise.all([appDb?.drop(), providerDb?.drop()]);
  });

  return {
    appDb: () => ready(appDb),
    providerDb: () => ready(providerDb),
    provider: () => ready(provider),
    app: () => ready(app),
    startApp,
    startProvider,
  };
}

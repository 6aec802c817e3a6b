import type { AdapterName } from './test-app';
import { type SampleAppProcess, startSampleAppProcess } from './sample-app-process';
import { type TestDatabase, createTestDatabase } from './test-database';

/** Sample-app processes on one database of their own, for the tests that kill processes. */
export interface SampleAppCluster {
  /** The cluster's database (available once `beforeAll` ran). */
  db(): TestDatabase;
  /** Starts one more sample-app process on the cluster's database. */
  start(options: { paymentLatencyMs: number }): Promise<SampleAppProcess>;
}

/**
 * Registers the Jest hooks of a cluster: a database for the describe block, and every process
 * started in a test killed after it, whatever happened.
 */
export function useSampleAppCluster(
  adapter: AdapterName,
  settings: { lockTimeoutMs: number },
): SampleAppCluster {
  let db: TestDatabase | undefined;
  const children: SampleAppProcess[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
  });

  afterEach(async () => {
    await Promise.all(children.splice(0).map((child) => child.kill()));
  });

  afterAll(async () => {
    await db?.drop();
  });

  const database = (): TestDatabase => {
    if (!db) {
      throw new Error('the cluster database is created in beforeAll');
    }
    return db;
  };

  return {
    db: database,
    start: async ({ paymentLatencyMs }) => {
      const child = await startSampleAppProcess({
        env: {
          DATABASE_URL: database().url,
          HTTP_ADAPTER: adapter,
          PAYMENT_LATENCY_MS: String(paymentLatencyMs),
          IDEMPOTENCY_LOCK_TIMEOUT_MS: String(settings.lockTimeoutMs),
        },
      });
      children.push(child);
      return child;
    },
  };
}

import { startEmbeddedPostgres } from '../../sample-app/database/embedded-postgres';
import { TEST_SERVER_URL_ENV } from './test-env';

/**
 * Starts one real PostgreSQL for the whole run (embedded, unless DATABASE_URL names one).
 * Every test file then creates its own database on it (see test-database.ts).
 */
export default async function globalSetup(): Promise<void> {
  if (process.env.DATABASE_URL) {
    process.env[TEST_SERVER_URL_ENV] = process.env.DATABASE_URL;
    return;
  }
  const database = await startEmbeddedPostgres();
  (globalThis as { __embeddedPostgres__?: typeof database }).__embeddedPostgres__ = database;
  process.env[TEST_SERVER_URL_ENV] = database.url;
}

import { startEmbeddedPostgres } from '../../sample-app/database/embedded-postgres';
import { TEST_SERVER_URL_ENV } from './test-env';
import { type SharedServer, sharedServer } from './shared-server';

/**
 * Starts one real PostgreSQL for the whole run (embedded, unless DATABASE_URL names one). Every
 * test file then creates its own database on it (see test-database.ts). Each Jest project runs
 * this; the server is started once and shared.
 */
export default async function globalSetup(): Promise<void> {
  const shared: SharedServer = sharedServer();
  shared.users++;
  if (process.env[TEST_SERVER_URL_ENV]) {
    return;
  }
  if (process.env.DATABASE_URL) {
    process.env[TEST_SERVER_URL_ENV] = process.env.DATABASE_URL;
    return;
  }
  shared.database = await startEmbeddedPostgres();
  process.env[TEST_SERVER_URL_ENV] = shared.database.url;
}

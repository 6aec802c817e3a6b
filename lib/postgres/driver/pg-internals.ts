import type { ClientBase, Connection, PoolClient } from 'pg';

/*
 * Every use the PostgreSQL store makes of node-postgres beyond its documented API, in one place.
 * test/e2e/pg-internals.e2e-spec.ts checks each against the installed pg, so that an upgrade that
 * moves one fails there, by name, rather than somewhere in the store.
 */

/** The parts of pg's (untyped) connection that a pipeline writes protocol messages to. */
export interface PgWire {
  stream: { cork?: () => void; uncork?: () => void };
  /** Names of the statements this connection has prepared, with their text. */
  parsedStatements: Record<string, string | undefined>;
  parse(message: { name?: string; text: string; types: number[] }): void;
  bind(message: { statement: string; values: readonly (string | Buffer | null)[] }): void;
  describe(message: { type: 'P'; name: string }): void;
  execute(message: { portal: string; rows: number }): void;
  sync(): void;
}

/** The wire of the connection pg hands a custom query's `submit`. */
export function wireOf(connection: Connection): PgWire {
  return connection as unknown as PgWire;
}

/** Whether `client` runs in node-postgres's own pipeline mode (the `pipeline` client option). */
export function inPgPipelineMode(client: ClientBase): boolean {
  return (client as { pipeline?: boolean }).pipeline === true;
}

/** Where node-postgres keeps a client's socket. */
interface PgClientSocket {
  connection?: { stream?: { destroy?: (error?: Error) => void } };
}

/**
 * Destroys the client's socket with `reason`, as node-postgres itself does when a connection
 * attempt or, in its pipeline mode, a query outlives its timeout. The client then fails its
 * statement in flight and every queued one with `reason`, and emits `error`, on which TypeORM
 * releases the connection to the pool as broken. `client.end()` would not do: it closes politely
 * (waiting for the server) in pg's pipeline mode, which a frozen server never answers.
 */
export function destroySocket(client: PoolClient, reason: Error): void {
  const stream = (client as unknown as PgClientSocket).connection?.stream;
  if (typeof stream?.destroy === 'function') {
    stream.destroy(reason);
    return;
  }
  // Not where pg 8 keeps it: ending the client still fails a statement in flight outside
  // pipeline mode ("a hung query could block end forever").
  client.end().catch(() => undefined);
}

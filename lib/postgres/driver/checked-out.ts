import type { PoolClient } from 'pg';

/**
 * Listens for 'error' on a connection taken from the pool, until the returned function gives it
 * back. pg-pool listens only on idle connections, and a connection that fails while checked out
 * emits 'error', which, unheard, ends the process. The failure also reaches whatever statement
 * is in flight or sent next, and that is where the store handles it.
 */
export function guardCheckedOut(client: PoolClient): (error?: Error) => void {
  client.on('error', ignoreConnectionError);
  return (error) => {
    client.removeListener('error', ignoreConnectionError);
    client.release(error);
  };
}

/** See guardCheckedOut: the failure is handled where the connection's statements fail. */
function ignoreConnectionError(): void {}

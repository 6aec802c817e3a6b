/**
 * SQLSTATE classes and driver messages that mean the connection, not the statement, failed:
 * 08 (connection exception), 57P01-57P03 (server shutting down or not accepting), and what pg
 * and TypeORM raise when the socket is gone (TypeORM releases a query runner whose connection
 * emitted an error, and its EntityManager then refuses every query), looked for inside the
 * errors ORMs wrap them in (see `driverErrorIn`): an application's own error that names a failed
 * network call as its cause is the handler's, not the connection's.
 */
const CONNECTION_FAILURE_MESSAGE =
  /Connection terminated|Client has encountered a connection error|Query runner already released|provided by a query runner was already released|ECONNRESET|ECONNREFUSED|EPIPE/i;

/**
 * The driver's error an ORM's query error wraps: TypeORM's `driverError`, or the `cause` of an
 * error that carries the failed statement (`query`, as Drizzle's does).
 */
export function driverErrorIn(error: unknown): unknown {
  const { driverError, cause, query } = error as {
    driverError?: unknown;
    cause?: unknown;
    query?: unknown;
  };
  return driverError ?? (typeof query === 'string' ? cause : undefined);
}

export function isConnectionFailure(error: unknown): boolean {
  for (let current = error, depth = 0; current && depth < 4; depth++) {
    const { code, message } = current as { code?: unknown; message?: unknown };
    if (typeof code === 'string' && (code.startsWith('08') || /^57P0[123]$/.test(code))) {
      return true;
    }
    if (typeof message === 'string' && CONNECTION_FAILURE_MESSAGE.test(message)) {
      return true;
    }
    current = driverErrorIn(current);
  }
  return false;
}

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
 * Prisma's driver adapters' names for a connection that failed (`kind` of the database's error
 * that a `DriverAdapterError` carries), where pg's error had no SQLSTATE.
 */
const PRISMA_CONNECTION_FAILURES = new Set([
  'ConnectionClosed',
  'DatabaseNotReachable',
  'SocketTimeout',
]);

/**
 * The driver's error an ORM's query error wraps: TypeORM's `driverError`, Prisma's
 * `meta.driverAdapterError` and, inside that `DriverAdapterError`, the database's error as its
 * `cause`, or the `cause` of an error that carries the failed statement (`query`, as Drizzle's
 * does).
 */
export function driverErrorIn(error: unknown): unknown {
  const { driverError, cause, query, meta, name } = error as {
    driverError?: unknown;
    cause?: unknown;
    query?: unknown;
    meta?: { driverAdapterError?: unknown } | null;
    name?: unknown;
  };
  if (name === 'DriverAdapterError') {
    return cause;
  }
  return driverError ?? meta?.driverAdapterError ?? (typeof query === 'string' ? cause : undefined);
}

/**
 * The SQLSTATE `error` itself carries, if any: `code`, or Prisma's `originalCode` (its adapters
 * keep `code` only for the errors they do not classify). The `code` of an error of Prisma's
 * client (it has a `clientVersion`) is Prisma's own (`P2010` for any failed raw statement, `P2028`
 * for a closed transaction), though it looks like one.
 */
export function ownSqlstate(error: unknown): string | undefined {
  const { code, originalCode, clientVersion } = error as {
    code?: unknown;
    originalCode?: unknown;
    clientVersion?: unknown;
  };
  if (clientVersion !== undefined) {
    return undefined;
  }
  const sqlstate = originalCode ?? code;
  return typeof sqlstate === 'string' && /^[0-9A-Z]{5}$/.test(sqlstate) ? sqlstate : undefined;
}

export function isConnectionFailure(error: unknown): boolean {
  for (let current = error, depth = 0; current && depth < 4; depth++) {
    const { message, kind } = current as { message?: unknown; kind?: unknown };
    const code = ownSqlstate(current);
    if (code !== undefined && (code.startsWith('08') || /^57P0[123]$/.test(code))) {
      return true;
    }
    if (typeof message === 'string' && CONNECTION_FAILURE_MESSAGE.test(message)) {
      return true;
    }
    if (typeof kind === 'string' && PRISMA_CONNECTION_FAILURES.has(kind)) {
      return true;
    }
    current = driverErrorIn(current);
  }
  return false;
}

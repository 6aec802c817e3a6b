/**
 * SQLSTATE classes and driver messages that mean the connection, not the statement, failed:
 * 08 (connection exception), 57P01-57P03 (server shutting down or not accepting), and what pg
 * and TypeORM raise when the socket is gone (TypeORM releases a query runner whose connection
 * emitted an error, and its EntityManager then refuses every query). ORMs wrap the driver's error:
 * TypeORM as `driverError`, others as `cause`.
 */
const CONNECTION_FAILURE_MESSAGE =
  /Connection terminated|Client has encountered a connection error|Query runner already released|provided by a query runner was already released|ECONNRESET|ECONNREFUSED|EPIPE/i;

export function isConnectionFailure(error: unknown): boolean {
  for (let current = error, depth = 0; current && depth < 4; depth++) {
    const { code, message, driverError, cause } = current as {
      code?: unknown;
      message?: unknown;
      driverError?: unknown;
      cause?: unknown;
    };
    if (typeof code === 'string' && (code.startsWith('08') || /^57P0[123]$/.test(code))) {
      return true;
    }
    if (typeof message === 'string' && CONNECTION_FAILURE_MESSAGE.test(message)) {
      return true;
    }
    current = driverError ?? cause;
  }
  return false;
}

import { driverErrorIn, ownSqlstate } from './connection-failure';

/** The PostgreSQL error codes (SQLSTATE) the store acts on. */
export const SQLSTATE = {
  /** A statement cancelled by statement_timeout. */
  queryCanceled: '57014',
  /** A second pending detach ("already pending detach in partitioned table"). */
  objectNotInPrerequisiteState: '55000',
  /**
   * A write that met a row a concurrent update moved to another partition (or any serialization
   * failure): the statement may run again.
   */
  serializationFailure: '40001',
} as const;

/** The SQLSTATE of `error`, when PostgreSQL raised it. */
export function sqlstateOf(error: unknown): unknown {
  return (error as { code?: unknown } | null)?.code;
}

/**
 * The SQLSTATE of `error` or of the driver error an ORM wrapped in it (see `driverErrorIn`), when
 * PostgreSQL raised it.
 */
export function sqlstateWithin(error: unknown): string | undefined {
  for (let current = error, depth = 0; current && depth < 4; depth++) {
    const sqlstate = ownSqlstate(current);
    if (sqlstate !== undefined) {
      return sqlstate;
    }
    current = driverErrorIn(current);
  }
  return undefined;
}

/** `error` as an Error, for pg's `release(error)`, which drops the connection. */
export function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

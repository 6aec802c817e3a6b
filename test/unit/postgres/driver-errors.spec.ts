import { isConnectionFailure } from '../../../lib/postgres/driver/connection-failure';
import { sqlstateWithin } from '../../../lib/postgres/driver/sqlstate';

/** An error as Prisma's driver adapters raise it: the database's error as its `cause`. */
const adapterError = (cause: object) =>
  Object.assign(new Error(String((cause as { kind: string }).kind)), {
    name: 'DriverAdapterError',
    cause,
  });

/** The request error Prisma's client wraps a failed raw statement's adapter error in. */
const prismaRawQueryError = (driverAdapterError: Error) =>
  Object.assign(new Error('Raw query failed.'), {
    name: 'PrismaClientKnownRequestError',
    code: 'P2010',
    meta: { driverAdapterError },
    clientVersion: '7.10.1',
  });

describe('the SQLSTATE inside a Prisma error', () => {
  it("is the database's, not Prisma's own code", () => {
    const aborted = adapterError({
      originalCode: '25P02',
      originalMessage: 'current transaction is aborted',
      kind: 'postgres',
      code: '25P02',
      severity: 'ERROR',
      message: 'current transaction is aborted',
    });
    expect(sqlstateWithin(prismaRawQueryError(aborted))).toBe('25P02');
  });

  it('is the original code of an error the adapter classified (a failed COMMIT)', () => {
    const violation = adapterError({
      originalCode: '23503',
      originalMessage: 'insert or update on table "t" violates foreign key constraint "t_fkey"',
      kind: 'ForeignKeyConstraintViolation',
      constraint: { index: 't_fkey' },
    });
    expect(sqlstateWithin(violation)).toBe('23503');
    expect(sqlstateWithin(prismaRawQueryError(violation))).toBe('23503');
  });

  it("is none for an error of Prisma's client alone, whose code is Prisma's (a closed transaction)", () => {
    const closed = Object.assign(new Error('Transaction already closed'), {
      name: 'PrismaClientKnownRequestError',
      code: 'P2028',
      meta: { modelName: undefined },
      clientVersion: '7.10.1',
    });
    expect(sqlstateWithin(closed)).toBe(undefined);
    expect(isConnectionFailure(closed)).toBe(false);
  });

  it('is none when the adapter error carries no SQLSTATE', () => {
    expect(sqlstateWithin(prismaRawQueryError(adapterError({ kind: 'ConnectionClosed' })))).toBe(
      undefined,
    );
  });
});

describe('isConnectionFailure on Prisma errors', () => {
  it.each(['ConnectionClosed', 'DatabaseNotReachable', 'SocketTimeout'])(
    'is true for a lost connection (%s)',
    (kind) => {
      expect(isConnectionFailure(prismaRawQueryError(adapterError({ kind })))).toBe(true);
    },
  );

  it('is true for a server shutting down (57P01), false for a failed statement', () => {
    const shutdown = adapterError({ originalCode: '57P01', kind: 'postgres', code: '57P01' });
    expect(isConnectionFailure(prismaRawQueryError(shutdown))).toBe(true);
    const divided = adapterError({
      originalCode: '22012',
      kind: 'postgres',
      code: '22012',
      message: 'division by zero',
    });
    expect(isConnectionFailure(prismaRawQueryError(divided))).toBe(false);
  });
});

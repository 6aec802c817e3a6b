import type { ClientBase } from 'pg';

/** One row a statement returned, by column name. */
export type AppTransactionRow = Record<string, unknown>;

/**
 * The application's own transactions, as the PostgreSQL store runs transactional routes in them:
 * how to open one, and how to send one statement on it. Each data layer needs only these two;
 * `clsTransactionHost()` makes them from `@nestjs-cls/transactional`.
 *
 * @typeParam TTx - the data layer's transaction (an EntityManager, a Drizzle or Kysely
 *   transaction, ...), handed to the statements and to the handler.
 */
export interface PostgresAppTransactions<TTx = unknown> {
  /**
   * Runs `work` in a new transaction of the application's, and where its handlers find it
   * (their async context): committed when `work` resolves, rolled back when it rejects, and
   * settled only once that is done.
   */
  run<T>(work: (transaction: TTx) => Promise<T>): Promise<T>;
  /**
   * Sends `text`, with `$1`-style parameters `values` (strings, numbers, `Buffer`s for bytea, or
   * null), in `transaction`; resolves with the rows it returned.
   */
  query(transaction: TTx, text: string, values: readonly unknown[]): Promise<AppTransactionRow[]>;
  /**
   * The node-postgres client (connection) that `transaction` runs on, when the data layer shows
   * it; `undefined` when it does not. When given, the store sends its own statements on that
   * client directly, several in one round trip (the claim with its statement timeout and
   * savepoint; the response's write), instead of one by one through `query`. Never a `Pool`: the
   * transaction's own connection.
   */
  client?(transaction: TTx): ClientBase | undefined;
}

/**
 * `transactions.client(transaction)`, refused when it is a pool: a pipeline sent through a pool
 * runs on a connection of its own, outside the transaction, which the pool never gets back.
 */
export function transactionClient<TTx>(
  transactions: PostgresAppTransactions<TTx>,
  transaction: TTx,
): ClientBase | undefined {
  const client = transactions.client?.(transaction);
  if (client !== undefined && typeof (client as { totalCount?: unknown }).totalCount === 'number') {
    throw new Error(
      'nestjs-idempotency: transactionHost.client gave a pg Pool; it must give the connection of the transaction it is given (or undefined).',
    );
  }
  return client;
}

/**
 * What the store needs of a `@nestjs-cls/transactional` `TransactionHost`: declared here so that
 * the module does not load that package (the application does).
 */
export interface ClsTransactionHost<TTx = unknown> {
  readonly tx: TTx;
  withTransaction<R>(propagation: string, fn: () => Promise<R>): Promise<R>;
}

/** `@nestjs-cls/transactional`'s `Propagation.RequiresNew`. */
const REQUIRES_NEW = 'REQUIRES_NEW';

/**
 * The transactions of a `@nestjs-cls/transactional` `TransactionHost`, for the PostgreSQL store:
 * each transactional request opens its own (`Propagation.RequiresNew`), so the claim, the handler's
 * writes through `txHost.tx` (and `@Transactional()` services it calls) and the response commit
 * together. `query` sends one statement on the host's `tx` for the adapter in use (see
 * docs/without-typeorm.md for each ORM's); `client`, when given, finds the pg client under it
 * (see `PostgresAppTransactions.client`).
 */
export function clsTransactionHost<TTx>(
  host: ClsTransactionHost<TTx>,
  query: PostgresAppTransactions<TTx>['query'],
  client?: PostgresAppTransactions<TTx>['client'],
): PostgresAppTransactions<TTx> {
  return {
    run: (work) => host.withTransaction(REQUIRES_NEW, () => work(host.tx)),
    query,
    ...(client ? { client } : {}),
  };
}

import type { ClientBase } from 'pg';
import type {
  AppTransactionRow,
  PostgresAppTransactions,
} from '../app-transaction/app-transactions';

/** What `entityManagerQuery` uses of a TypeORM `EntityManager`. */
interface EntityManagerLike {
  query(text: string, parameters: unknown[]): Promise<unknown>;
}

/**
 * How the PostgreSQL store sends one statement on a TypeORM `EntityManager` (`txHost.tx` with
 * `@nestjs-cls/transactional-adapter-typeorm`), as
 * `pgPoolStore({ transactionHost: { token: TransactionHost, query: entityManagerQuery } })`.
 * TypeORM answers an UPDATE or a DELETE on PostgreSQL with `[rows, rowCount]`, and anything else
 * with its rows: both come back as rows.
 */
export const entityManagerQuery: PostgresAppTransactions['query'] = async (tx, text, values) => {
  const result = await (tx as EntityManagerLike).query(text, [...values]);
  const rows = isRowsAndCount(result) ? result[0] : result;
  return rows as AppTransactionRow[];
};

function isRowsAndCount(result: unknown): result is [unknown[], number] {
  return (
    Array.isArray(result) &&
    result.length === 2 &&
    Array.isArray(result[0]) &&
    typeof result[1] === 'number'
  );
}

/**
 * The node-postgres client under a TypeORM `EntityManager` of a transaction (its query runner's
 * connection), for
 * `transactionHost: { token: TransactionHost, query: entityManagerQuery, client: entityManagerClient }`:
 * the store then sends its statements on it, several in one round trip. `undefined` for a manager
 * without a connected query runner.
 */
export const entityManagerClient: NonNullable<PostgresAppTransactions['client']> = (tx) =>
  (tx as { queryRunner?: { databaseConnection?: ClientBase } }).queryRunner?.databaseConnection;

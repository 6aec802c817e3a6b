import type { ClientBase } from 'pg';
import type {
  AppTransactionRow,
  PostgresAppTransactions,
} from '../app-transaction/app-transactions';

/** What `drizzleQuery` uses of Drizzle's `sql` tag: raw text, bound parameters, and joining them. */
export interface DrizzleSqlTag {
  raw(text: string): unknown;
  param(value: unknown): unknown;
  join(chunks: never[]): unknown;
}

/** What `drizzleQuery` uses of a Drizzle (node-postgres) transaction. */
interface DrizzleExecutor {
  execute(query: unknown): Promise<{ rows: unknown[] }>;
}

/**
 * How the PostgreSQL store sends one statement on a Drizzle (node-postgres) transaction
 * (`txHost.tx`), as
 * `pgPoolStore({ transactionHost: { token: TransactionHost, query: drizzleQuery(sql) } })`. Takes
 * Drizzle's own `sql` (from `drizzle-orm`), so that the module loads no Drizzle of its own: the text
 * between `$n` placeholders goes in raw, and each value as a bound parameter (`sql.param`, which
 * keeps an array one value).
 */
export function drizzleQuery(sql: DrizzleSqlTag): PostgresAppTransactions['query'] {
  return async (tx, text, values) => {
    const chunks: unknown[] = [];
    let last = 0;
    for (const match of text.matchAll(/\$(\d+)/g)) {
      chunks.push(sql.raw(text.slice(last, match.index)), sql.param(values[Number(match[1]) - 1]));
      last = match.index + match[0].length;
    }
    chunks.push(sql.raw(text.slice(last)));
    const result = await (tx as DrizzleExecutor).execute(sql.join(chunks as never[]));
    return result.rows as AppTransactionRow[];
  };
}

/**
 * The node-postgres client under a Drizzle (node-postgres) transaction (its session's), for
 * `transactionHost: { token: TransactionHost, query: drizzleQuery(sql), client: drizzleClient }`:
 * the store then sends its statements on it, several in one round trip. `undefined` for another
 * driver's transaction.
 */
export const drizzleClient: NonNullable<PostgresAppTransactions['client']> = (tx) => {
  const client = (tx as { session?: { client?: ClientBase } }).session?.client;
  // A Pool (no transaction of its own) counts its clients; a connection does not.
  return client && typeof client.query === 'function' && !('totalCount' in client)
    ? client
    : undefined;
};

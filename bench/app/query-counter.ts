import pg from 'pg';

/**
 * Counts the statements this process sends to PostgreSQL by wrapping `pg`'s `Client#query`, which
 * TypeORM's query runners and the idempotency store's pool queries all go through. The fallback
 * statement count when the server has no `pg_stat_statements`, and a cross-check when it has.
 *
 * @returns a function reading the count so far.
 */
export function countPgQueries(): () => number {
  let count = 0;
  const prototype = pg.Client.prototype as { query: (...args: unknown[]) => unknown };
  const original = prototype.query;
  prototype.query = function countedQuery(this: pg.Client, ...args: unknown[]): unknown {
    count++;
    return original.apply(this, args);
  };
  return () => count;
}

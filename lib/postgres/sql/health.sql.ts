import { assertTableName } from './table-name';

/*
 * The reads of a health check. Each runs in the check's read-only transaction, under its
 * statement_timeout, so none can run long however large the table.
 */

/**
 * Age of the oldest live in-flight row in milliseconds, null when there is none. No index of the
 * table covers `state`, so without `createInFlightIndexSql`'s partial index this is a scan of the
 * live rows, cut off by the statement timeout; with it, one index entry is read.
 */
export function oldestInFlightSql(T: string): string {
  assertTableName(T);
  return `
SELECT floor(extract(epoch FROM now() - min(created_at)) * 1000)::float8 AS age_ms
  FROM ${T}
 WHERE state = 'in_flight' AND expires_at > now()`;
}

/**
 * $1 limit: how many expired rows wait for the purge, counted up to the limit through the
 * `expires_at` index, the one the purge itself walks.
 */
export function expiredCountSql(T: string): string {
  assertTableName(T);
  return `
SELECT count(*)::int AS expired
  FROM (SELECT 1 FROM ${T} WHERE expires_at <= now() LIMIT $1) e`;
}

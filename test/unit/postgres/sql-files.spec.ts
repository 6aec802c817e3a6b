import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CREATE_IDEMPOTENCY_TABLE_SQL,
  createIdempotencyTableSql,
  createInFlightIndexSql,
  createPartitionedIdempotencyTableSql,
} from '../../../lib/postgres/pool';

/*
 * The plain .sql files shipped in the package are for those who create the table without the
 * library's code (psql, Flyway, a DBA's review): they must say exactly what the functions say, or
 * a table made from a file would differ from the one the store expects.
 */

/** Jest runs from the repository's root. */
const read = (name: string) => readFileSync(join(process.cwd(), 'sql', name), 'utf8');

describe('the committed .sql files', () => {
  it.each([
    ['idempotency-records.sql', () => createIdempotencyTableSql()],
    ['idempotency-records-partitioned.sql', () => createPartitionedIdempotencyTableSql()],
    ['idempotency-records-in-flight-index.sql', () => createInFlightIndexSql()],
  ])('%s is the output of its function for the default table', (name, sql) => {
    expect(read(name)).toBe(sql());
  });

  it('holds the default table under its constant too', () => {
    expect(read('idempotency-records.sql')).toBe(CREATE_IDEMPOTENCY_TABLE_SQL);
  });

  it('creates the default table, not a renamed one', () => {
    expect(read('idempotency-records.sql')).toMatch(
      /CREATE TABLE IF NOT EXISTS idempotency_records \(/,
    );
    expect(read('idempotency-records-partitioned.sql')).toMatch(
      /PARTITION BY RANGE \(expires_at\)/,
    );
  });
});

import { IDEMPOTENCY_TABLE, assertTableName } from '../sql/table-name';

/**
 * An optional partial index of the in-flight rows by age, as plain SQL, for health checks that
 * report the oldest in-flight key (`oldestInFlight` of the health indicator): without it, that
 * read scans the live rows, cut off by the check's statement timeout. It holds only the rows in
 * flight right now (abandoned claims included, until taken over or expired), so it stays small.
 * It costs writes: a claim adds an entry, and a transactional completion, which would otherwise
 * update its row in place (HOT), changes `state`, which the index's condition reads, and so writes
 * new entries in every index of the table.
 *
 * For an ordinary table it is built `CONCURRENTLY`, without blocking writes, which cannot run
 * inside a transaction (a TypeORM migration needs `transaction = false`). PostgreSQL cannot build
 * an index on a partitioned table concurrently: with `partitioned`, the statement is a plain
 * `CREATE INDEX`, which blocks writes to the whole table until every partition has it (see
 * docs/operations.md for building it partition by partition); partitions created later get the
 * index when they are attached.
 */
export function createInFlightIndexSql(
  tableName: string = IDEMPOTENCY_TABLE,
  options: { partitioned?: boolean } = {},
): string {
  assertTableName(tableName);
  const index = `${tableName.split('.').pop()}_in_flight_idx`;
  const create = options.partitioned ? 'CREATE INDEX' : 'CREATE INDEX CONCURRENTLY';
  return `${create} IF NOT EXISTS ${index} ON ${tableName} (created_at) WHERE state = 'in_flight';\n`;
}

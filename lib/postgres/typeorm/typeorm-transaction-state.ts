import type { DataSource, QueryRunner } from 'typeorm';

const ISOLATION_LEVELS = new Set([
  'READ UNCOMMITTED',
  'READ COMMITTED',
  'REPEATABLE READ',
  'SERIALIZABLE',
]);

/** TypeORM's own bookkeeping of a query runner's transaction (`transactionDepth` is protected). */
interface TransactionState {
  isTransactionActive: boolean;
  transactionDepth: number;
}

/**
 * The BEGIN that TypeORM's `startTransaction()` would send for this DataSource: with its
 * configured `isolationLevel`, if any, in the same statement.
 */
export function beginStatement(dataSource: DataSource): string {
  const level = dataSource.options.isolationLevel;
  if (level === undefined) {
    return 'BEGIN';
  }
  if (!ISOLATION_LEVELS.has(level)) {
    throw new Error(`nestjs-idempotency: unsupported isolation level ${JSON.stringify(level)}.`);
  }
  return `BEGIN ISOLATION LEVEL ${level}`;
}

/**
 * The store sends BEGIN and COMMIT itself, each in one round trip with its neighbouring statement,
 * so TypeORM's `startTransaction()`/`commitTransaction()` are not called. These keep the query
 * runner's state as those calls would, so that a handler's own `manager.transaction()` nests in a
 * savepoint instead of committing the request's transaction, and send its subscribers the same
 * events (AfterTransactionStart comes after the claim, which travels with the BEGIN).
 */
export async function transactionStarting(queryRunner: QueryRunner): Promise<void> {
  setState(queryRunner, true, 1);
  await queryRunner.broadcaster.broadcast('BeforeTransactionStart');
}

export async function transactionStarted(queryRunner: QueryRunner): Promise<void> {
  await queryRunner.broadcaster.broadcast('AfterTransactionStart');
}

export async function transactionCommitting(queryRunner: QueryRunner): Promise<void> {
  await queryRunner.broadcaster.broadcast('BeforeTransactionCommit');
}

export async function transactionCommitted(queryRunner: QueryRunner): Promise<void> {
  setState(queryRunner, false, 0);
  await queryRunner.broadcaster.broadcast('AfterTransactionCommit');
}

/**
 * The transaction is being rolled back without TypeORM and without waiting (see
 * PostgresIdempotencyStore.abandon). Subscribers still hear of the rollback; their work is not
 * waited for either.
 */
export function transactionAbandoned(queryRunner: QueryRunner): void {
  setState(queryRunner, false, 0);
  queryRunner.broadcaster
    .broadcast('BeforeTransactionRollback')
    .then(() => queryRunner.broadcaster.broadcast('AfterTransactionRollback'))
    .catch(() => undefined);
}

function setState(queryRunner: QueryRunner, active: boolean, depth: number): void {
  const state = queryRunner as unknown as TransactionState;
  state.isTransactionActive = active;
  state.transactionDepth = depth;
}

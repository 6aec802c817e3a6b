import { randomUUID } from 'node:crypto';
import type { Pool, PoolClient } from 'pg';
import type { DataSource, EntityManager, QueryRunner } from 'typeorm';
import type { IsolationLevel } from 'typeorm/driver/types/IsolationLevel';
import type { ClaimRequest } from '../../store/claim-result.interface';
import type { IdempotencyStepTransaction } from '../../store/recovery-points.interface';
import type {
  TransactionLimits,
  TransactionalClaimResult,
  TransactionalIdempotencyStore,
} from '../../store/transactional-idempotency-store';
import { runPipeline } from '../driver/pipelined-query';
import type { IdempotencyPartitioning } from '../layout/idempotency-partitions';
import { CLAIM_SAVEPOINT, openTransaction } from '../layout/planned';
import { CLAIM_ATTEMPTS, type ClaimRow, claimHandle, decideRow } from '../store/claim-row';
import { PgPoolIdempotencyStore } from '../store/pg-pool-idempotency.store';
import { PgStepTransaction } from '../store/step-transaction';
import { PostgresIdempotencyTransaction } from './postgres-idempotency.transaction';
import {
  beginStatement,
  transactionAbandoned,
  transactionStarted,
  transactionStarting,
} from './typeorm-transaction-state';

/**
 * The default store: one PostgreSQL table, reached through the pg pool of the application's
 * TypeORM `DataSource` (its size and connection settings are the DataSource's). Statements are
 * prepared and sent on the pool directly: no ORM query building on the hot path. It also runs
 * transactional mode, on a query runner of the same DataSource.
 */
export class PostgresIdempotencyStore
  extends PgPoolIdempotencyStore
  implements TransactionalIdempotencyStore<EntityManager>
{
  private begin: string | undefined;

  /**
   * @param dataSource an initialised TypeORM DataSource on PostgreSQL (its pool is borrowed).
   * @param tableName the idempotency table, optionally schema-qualified. Default:
   *   `idempotency_records`.
   * @param partitioning set when the table is partitioned by expiry (created with
   *   `createPartitionedIdempotencyTableSql`): `maintain()` then creates its partitions ahead and
   *   `purgeExpired()` drops the expired ones.
   */
  constructor(
    private readonly dataSource: DataSource,
    tableName?: string,
    partitioning?: IdempotencyPartitioning,
  ) {
    super(() => poolOf(dataSource), tableName, partitioning);
  }

  async claimInTransaction(
    request: ClaimRequest,
    limits?: TransactionLimits,
  ): Promise<TransactionalClaimResult<EntityManager>> {
    const statementTimeoutMs = limits?.statementTimeoutMs ?? 0;
    const opening = openTransaction(this.beginText(), statementTimeoutMs);
    const queryRunner = this.dataSource.createQueryRunner('master');
    let claimed = false;
    try {
      const client = (await queryRunner.connect()) as PoolClient;
      await transactionStarting(queryRunner);
      for (let attempt = 0; attempt < CLAIM_ATTEMPTS; attempt++) {
        const token = randomUUID();
        // The first attempt opens the transaction in the same round trip; the savepoint after the
        // claim is what a response stored without the handler's writes rolls back to.
        const claim = this.layout.claimInTransaction(request, token, attempt === 0 ? opening : []);
        const results = await runPipeline(client, [...claim.statements, CLAIM_SAVEPOINT]);
        if (attempt === 0) {
          await transactionStarted(queryRunner);
        }
        const row = results[claim.at].rows[0] as ClaimRow | undefined;
        if (row?.outcome === 'claimed') {
          claimed = true;
          const handle = claimHandle(request, token, row);
          return {
            kind: 'claimed',
            transaction: new PostgresIdempotencyTransaction(
              handle,
              request,
              queryRunner,
              client,
              this.layout,
              limits && statementTimeoutMs > 0 ? statementTimeoutMs + limits.graceMs : null,
            ),
          };
        }
        if (row?.outcome === 'busy') {
          return { kind: 'busy' };
        }
        const decision = row ? decideRow(row, request) : { kind: 'retry' as const };
        if (decision.kind !== 'retry') {
          return decision;
        }
      }
      return { kind: 'busy' };
    } catch (error) {
      throw this.layout.explain(error);
    } finally {
      if (!claimed) {
        this.abandon(queryRunner);
      }
    }
  }

  /**
   * Ends a transaction that claimed nothing, without waiting for it: the ROLLBACK is queued on the
   * connection before it goes back to the pool, so whoever takes the connection next runs after
   * it. Whatever the ROLLBACK meets (a dead connection) is the pool's to handle, as for any query.
   * This relies on node-postgres 8 queueing a query behind one in flight, which it announces it
   * will stop doing in pg 9: revisit with the peer dependency's next major.
   */
  private abandon(queryRunner: QueryRunner): void {
    const client = (queryRunner as unknown as { databaseConnection?: PoolClient })
      .databaseConnection;
    if (client && queryRunner.isTransactionActive) {
      client.query('ROLLBACK').catch(() => undefined);
    }
    transactionAbandoned(queryRunner);
    queryRunner.release().catch(() => undefined);
  }

  /**
   * Opens a transaction of the DataSource for one step's work (`IdempotencySteps.
   * runInTransaction`): the work writes through its `EntityManager` (and `@Transactional`-free
   * repositories taken from it), and the step's recovery point commits with its writes. At the
   * DataSource's isolation level; READ COMMITTED on a partitioned table.
   */
  override async beginStepTransaction(): Promise<IdempotencyStepTransaction<EntityManager>> {
    const queryRunner = this.dataSource.createQueryRunner('master');
    let client: PoolClient;
    try {
      client = (await queryRunner.connect()) as PoolClient;
    } catch (error) {
      await queryRunner.release().catch(() => undefined);
      throw error;
    }
    try {
      await queryRunner.startTransaction(this.layout.stepIsolation() as IsolationLevel | undefined);
    } catch (error) {
      // A subscriber may have failed after the transaction began.
      abandonStepTransaction(queryRunner, client);
      throw error;
    }
    return new PgStepTransaction(queryRunner.manager, client, this.layout, {
      commit: () => queryRunner.commitTransaction(),
      rollback: async () => {
        try {
          await queryRunner.rollbackTransaction();
        } catch (error) {
          // A subscriber may have failed before the ROLLBACK was sent.
          await client.query('ROLLBACK');
          throw error;
        }
      },
      release: (error) => {
        if (error === undefined) {
          void queryRunner.release().catch(() => undefined);
        } else {
          abandonStepTransaction(queryRunner, client);
        }
      },
    });
  }

  private beginText(): string {
    this.begin ??= this.layout.begin();
    return this.begin;
  }

  /**
   * The BEGIN that TypeORM would send for the DataSource (with its isolation level).
   * @internal
   */
  protected override transactionBegin(): string {
    return beginStatement(this.dataSource);
  }

  /**
   * The DataSource's isolation level.
   * @internal
   */
  protected override isolationLevel(): string | undefined {
    return this.dataSource.options.isolationLevel;
  }
}

/** TypeORM's PostgresDriver keeps its pg pool as `master`; it is typed `any` there. */
function poolOf(dataSource: DataSource): Pool {
  const pool = (dataSource.driver as unknown as { master?: Pool }).master;
  if (!pool) {
    throw new Error('nestjs-idempotency: the DataSource is not initialized (no pg pool).');
  }
  return pool;
}

/**
 * Gives back the connection of a step's transaction that may still be open: a ROLLBACK is queued
 * on it first (see `abandon`), so whoever takes it next runs after the rollback; a ROLLBACK
 * outside a transaction only warns.
 */
function abandonStepTransaction(queryRunner: QueryRunner, client: PoolClient): void {
  client.query('ROLLBACK').catch(() => undefined);
  transactionAbandoned(queryRunner);
  queryRunner.release().catch(() => undefined);
}

import type { PoolClient } from 'pg';
import type { EntityManager, QueryRunner } from 'typeorm';
import type { ClaimHandle, ClaimRequest } from '../../store/claim-result.interface';
import type { StoredResponse } from '../../store/stored-response.interface';
import {
  HandlerTransactionAbortedError,
  type IdempotencyTransactionHandle,
} from '../../store/transactional-idempotency-store';
import {
  ROLLBACK_TO_CLAIM,
  completionInTransaction,
  notReplayableInTransaction,
} from '../layout/planned';
import type { IdempotencyTableLayout } from '../layout/table-layout';
import { PipelineError, type PipelineStatement, runPipeline } from '../driver/pipelined-query';
import { isConnectionFailure } from '../driver/connection-failure';
import { explainWriteFailure } from '../driver/write-failure';
import { StatementDeadline } from './statement-deadline';
import {
  transactionAbandoned,
  transactionCommitted,
  transactionCommitting,
} from './typeorm-transaction-state';

/**
 * A claim held inside an open TypeORM transaction. The store's own statements go to the
 * transaction's pg client as prepared statements; the handler uses its EntityManager (`transaction`), bound to the same
 * query runner, so everything shares one connection and one commit. The response is written and
 * committed in one round trip.
 */
export class PostgresIdempotencyTransaction implements IdempotencyTransactionHandle<EntityManager> {
  private finished = false;
  private readonly deadline: StatementDeadline | null;

  constructor(
    readonly handle: ClaimHandle,
    private readonly request: ClaimRequest,
    private readonly queryRunner: QueryRunner,
    private readonly client: PoolClient,
    private readonly layout: IdempotencyTableLayout,
    /**
     * How long a statement sent through the query runner may go unanswered before the connection
     * is closed (see StatementDeadline), or null for no bound.
     */
    unansweredAfterMs: number | null,
  ) {
    this.deadline =
      unansweredAfterMs === null ? null : new StatementDeadline(client, unansweredAfterMs);
    this.deadline?.watch(queryRunner);
  }

  /** The transaction's EntityManager: the handler's writes go through it. */
  get transaction(): EntityManager {
    return this.queryRunner.manager;
  }

  completeAndCommit(response: StoredResponse, ttlMs: number): Promise<void> {
    return this.commitWith(response.status, [
      completionInTransaction(
        this.layout,
        this.handle,
        this.handle.token,
        response,
        this.ttl(ttlMs),
      ),
    ]);
  }

  async discardWritesAndComplete(response: StoredResponse, ttlMs: number): Promise<boolean> {
    // Back to the claim's savepoint: the handler's writes go, the claim and its lock stay, so no
    // other request can take the key before the response is stored. One round trip.
    await this.commitWith(response.status, [
      ROLLBACK_TO_CLAIM,
      completionInTransaction(
        this.layout,
        this.handle,
        this.handle.token,
        response,
        this.ttl(ttlMs),
      ),
    ]);
    return true;
  }

  markNotReplayableAndCommit(status: number | null, ttlMs: number): Promise<void> {
    return this.commitWith(status, [
      notReplayableInTransaction(this.layout, this.handle, status, this.ttl(ttlMs)),
    ]);
  }

  private ttl(ttlMs: number): number {
    return this.layout.transactionalTtlMs(this.request.ttlMs, ttlMs);
  }

  /**
   * Runs `writes` (the last one on the claim's row) and COMMIT in one round trip; rolls back when
   * any fails.
   */
  private async commitWith(status: number | null, writes: PipelineStatement[]): Promise<void> {
    this.finished = true;
    try {
      await transactionCommitting(this.queryRunner);
      await runPipeline(this.client, [...writes, { text: 'COMMIT' }]);
      await transactionCommitted(this.queryRunner);
    } catch (error) {
      this.finished = false;
      // Only the write on the claim's row (the last before COMMIT) is explained.
      const rowWrite = error instanceof PipelineError && error.statementIndex === writes.length - 1;
      const explained = explainWriteFailure(error, rowWrite ? error.code : undefined, status);
      if (!(explained instanceof HandlerTransactionAbortedError)) {
        await this.rollback();
      }
      // An aborted transaction stays open: the caller rolls it back, or replaces it by the
      // response alone (discardWritesAndComplete).
      throw explained;
    }
    await this.releaseConnection();
  }

  async rollback(): Promise<void> {
    if (this.finished) {
      return;
    }
    this.finished = true;
    try {
      if (this.deadline?.closedConnection) {
        // The server rolls back on its own when it sees the connection gone; there is nothing to
        // send it on, but subscribers still hear of the rollback.
        transactionAbandoned(this.queryRunner);
      } else if (this.queryRunner.isTransactionActive) {
        await this.queryRunner.rollbackTransaction();
      }
    } catch {
      // A broken connection rolls the transaction back by itself.
    } finally {
      await this.releaseConnection().catch(() => undefined);
    }
  }

  isConnectionFailure(error: unknown): boolean {
    // Once the deadline closed the connection, whatever the handler raised (its own error around
    // a failed statement included) comes from that.
    return this.deadline?.closedConnection === true || isConnectionFailure(error);
  }

  private releaseConnection(): Promise<void> {
    this.deadline?.stop();
    return this.queryRunner.release();
  }
}

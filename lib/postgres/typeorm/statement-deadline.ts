import type { PoolClient } from 'pg';
import type { QueryRunner } from 'typeorm';
import { destroySocket } from '../driver/pg-internals';

/** Largest delay Node's timers honour; a larger one fires after 1 ms. */
const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

/**
 * The error a statement of a transaction fails with (inside TypeORM's QueryFailedError) when its
 * connection was closed because PostgreSQL left it, or one before it, unanswered for too long.
 * Nothing of the transaction commits.
 */
export class StatementUnansweredError extends Error {
  constructor(readonly afterMs: number) {
    super(
      `nestjs-idempotency: PostgreSQL left a statement of the request's transaction unanswered for ${afterMs} ms; the connection was closed, so the transaction rolls back.`,
    );
    this.name = 'StatementUnansweredError';
  }
}

/**
 * Bounds, from the client, every statement sent through a transactional request's query runner:
 * the handler's (its EntityManager and repositories all call `query`), its savepoints, and the
 * rollback. PostgreSQL's `statement_timeout` cancels a slow statement on a server that runs; a
 * frozen or unreachable server cancels nothing, and the statement would wait for as long as the
 * outage lasts. One still unanswered after `afterMs` therefore closes the connection: no COMMIT
 * can follow on it, the server rolls the transaction back when it notices, and the statement (with
 * any queued behind it) fails with StatementUnansweredError. TypeORM then hands the connection back
 * to the pool, which drops it, and refuses the transaction's later statements.
 *
 * Streams (`queryRunner.stream`) are not bounded: a cursor legitimately stays open across reads.
 */
export class StatementDeadline {
  private closed = false;
  private active = true;
  private readonly afterMs: number;

  constructor(
    private readonly client: PoolClient,
    afterMs: number,
  ) {
    this.afterMs = Math.min(afterMs, MAX_TIMER_DELAY_MS);
  }

  /** Whether this deadline closed the connection. */
  get closedConnection(): boolean {
    return this.closed;
  }

  /** From now on, each statement `queryRunner` sends is bounded. */
  watch(queryRunner: QueryRunner): void {
    const query = queryRunner.query.bind(queryRunner) as (...args: unknown[]) => Promise<unknown>;
    const bounded = async (...args: unknown[]): Promise<unknown> => {
      const timer = setTimeout(() => this.close(), this.afterMs);
      timer.unref();
      try {
        return await query(...args);
      } finally {
        clearTimeout(timer);
      }
    };
    queryRunner.query = bounded as QueryRunner['query'];
  }

  /**
   * The transaction is over and its connection may be back in the pool, serving someone else: a
   * statement left running on it (a handler's query it did not await) must not close it.
   */
  stop(): void {
    this.active = false;
  }

  private close(): void {
    if (!this.active || this.closed) {
      return;
    }
    this.closed = true;
    destroySocket(this.client, new StatementUnansweredError(this.afterMs));
  }
}

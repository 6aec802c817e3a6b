import type { CallHandler } from '@nestjs/common';
import { type Observable, defer } from 'rxjs';
import { ACTIVE_TRANSACTION } from '../idempotency.constants';
import type { ClaimResult } from '../store/claim-result.interface';
import {
  HandlerTransactionAbortedError,
  type IdempotencyTransactionHandle,
  type TransactionLimits,
  type TransactionalClaimResult,
  type TransactionalIdempotencyStore,
} from '../store/transactional-idempotency-store';
import type { IdempotencyTransactionContext } from '../transaction/idempotency-transaction.context';
import type { Exchange, HandlerOutcome, Recordable, RecordDecision } from './exchange';
import type { ExecutionSteps } from './execution-steps';
import { waitWhileHeld } from './wait-while-held';
import { boundedClaim } from './with-timeout';

/**
 * Thrown inside the pipeline when the transaction could not be carried to its end (the claim,
 * the write with the commit failed or timed out, or the handler lost the connection): answered 503.
 */
class RecordingFailed extends Error {
  constructor(
    readonly step: string,
    override readonly cause: unknown,
  ) {
    super(`nestjs-idempotency: ${step} failed in the idempotency transaction`);
  }
}

/** A transaction that holds the key, or what the key held instead. */
type TransactionalClaim =
  | Extract<TransactionalClaimResult, { kind: 'claimed' }>
  | Exclude<ClaimResult, { kind: 'claimed' }>;

/**
 * Transactional mode: the claim, the handler's writes and the stored response commit together in
 * one PostgreSQL transaction, or roll back together.
 */
export class TransactionalExecution {
  constructor(
    private readonly steps: ExecutionSteps,
    private readonly context: IdempotencyTransactionContext,
    /** Null when no store of the module runs transactions: no route is transactional then. */
    private readonly store: () => TransactionalIdempotencyStore | null,
  ) {}

  /** Claims the exchange's key in a transaction, runs the handler in it when it won, and answers. */
  run(exchange: Exchange, next: CallHandler): Observable<unknown> {
    // Routes are checked at start-up: transactional ones exist only with a transactional store.
    const store = this.store() as TransactionalIdempotencyStore;
    return defer(() =>
      this.steps.claimThen(
        exchange,
        'Transactional claim',
        () => this.claimInTransaction(store, exchange),
        ({ transaction }) => this.execute(transaction, exchange, next),
      ),
    );
  }

  private async execute(
    transaction: IdempotencyTransactionHandle,
    exchange: Exchange,
    next: CallHandler,
  ): Promise<unknown> {
    exchange.request[ACTIVE_TRANSACTION] = transaction.transaction;
    const active = { transaction: transaction.transaction, route: exchange.route.name };
    // Everything the handler starts runs in the module's transaction context, and so does the
    // commit: TypeORM's commit subscribers and the onOutcome hook still see the transaction. A
    // transaction that the application's own manager opened is found inside its function only:
    // the handler runs there (runInTransaction).
    const handler = () => this.context.run(active, () => this.steps.runHandler(exchange, next));
    try {
      const outcome = await (transaction.runInTransaction?.(handler) ?? handler());
      return await this.context.run({ ...active, recording: true }, () =>
        this.recordInTransaction(transaction, exchange, outcome),
      );
    } catch (error) {
      throw error instanceof RecordingFailed
        ? this.steps.storeUnavailable(exchange, error.step, error.cause)
        : error;
    }
  }

  /**
   * Claims the key in a new transaction; for a finished key the store answers its stored outcome
   * (a replay) from the claim itself, or from a read before it opened any transaction. A duplicate of a key that another
   * transaction holds then polls with one read, holding no connection between looks, until the
   * holder commits (replay), rolls back (claim it) or the wait ends (409).
   */
  private async claimInTransaction(
    store: TransactionalIdempotencyStore,
    exchange: Exchange,
  ): Promise<TransactionalClaim> {
    const limits: TransactionLimits = {
      statementTimeoutMs: exchange.settings.statementTimeoutMs,
      // A statement the database leaves unanswered this much longer than its own timeout is given
      // up on, as a store call would be.
      graceMs: this.steps.settings.storeTimeoutMs,
    };
    const claim = () =>
      boundedClaim(
        store.claimInTransaction(exchange.claim, limits),
        this.steps.settings.storeTimeoutMs,
        (late) => (late.kind === 'claimed' ? late.transaction.rollback() : undefined),
      );
    const result = await waitWhileHeld(
      exchange,
      // The first attempt claims at once, as nearly every key is new: a lookup first would cost
      // each first execution a round trip to save replays one (measured: see docs/transactional-mode.md).
      // A store whose transactions cost more than a read may still read first inside its claim
      // (the app-transaction store does). Waiting duplicates look with the read alone, holding no
      // connection between looks.
      async (attempt) =>
        (attempt === 0 ? null : await this.steps.bounded(store.lookup(exchange.claim))) ?? claim(),
      (looked) => looked.kind === 'busy' || looked.kind === 'in-flight',
    );
    // A transaction holding the key has no lease to report: its elapsed time is unknown, and the
    // route's lease bounds the estimate (see ExecutionSteps.retryAfterMs).
    return result.kind === 'busy'
      ? { kind: 'in-flight', retryAfterMs: exchange.settings.lockTimeoutMs }
      : result;
  }

  private async recordInTransaction(
    transaction: IdempotencyTransactionHandle,
    exchange: Exchange,
    outcome: HandlerOutcome,
  ): Promise<unknown> {
    let decision: RecordDecision;
    try {
      decision = this.steps.decide(exchange, outcome);
    } catch (error) {
      // The answer cannot be made (a result JSON cannot serialize, a hook that threw): released
      // like a handler's 500, nothing commits, and a retry runs the handler afresh.
      decision = {
        kind: 'release',
        notStarted: false,
        status: 500,
        error,
        rethrow: true,
        send: undefined,
      };
    }
    if (decision.kind === 'release') {
      // Not awaited past the store timeout: a frozen database must not hold the answer.
      await this.steps
        .recording(exchange, 'release', () => this.steps.bounded(transaction.rollback()))
        .catch(() => undefined);
      if (decision.error !== undefined && transaction.isConnectionFailure(decision.error)) {
        // The handler failed because the transaction's connection did: nothing was committed,
        // and the client may retry, as after any store failure.
        throw new RecordingFailed('Handler connection', decision.error);
      }
      this.steps.report(exchange, decision.notStarted ? 'not-started' : 'released', {
        status: decision.status,
        error: decision.error,
      });
      if (decision.rethrow) {
        throw decision.error;
      }
      return decision.send;
    }
    // The response leaves only after the commit: what the client sees is what a retry replays.
    try {
      if (decision.kind === 'not-replayable') {
        await this.steps.recording(exchange, 'mark_not_replayable', () =>
          this.steps.bounded(
            transaction.markNotReplayableAndCommit(decision.status, exchange.settings.ttlMs),
          ),
        );
      } else {
        await this.steps.recording(exchange, 'complete', () =>
          this.storeInTransaction(transaction, exchange, decision.recordable),
        );
      }
    } catch (error) {
      // Either everything committed or nothing did; both make a retry safe (replay or rerun).
      // The rollback is not awaited: with a frozen database it would hold the answer as well.
      void transaction.rollback();
      throw new RecordingFailed('Commit', error);
    }
    const status = decision.kind === 'store' ? decision.recordable.status : decision.status;
    this.steps.report(exchange, decision.kind === 'store' ? 'completed' : 'not-replayable', {
      status: status ?? undefined,
    });
    if (decision.kind === 'not-replayable' && decision.rethrow) {
      throw decision.error;
    }
    return decision.kind === 'store' ? decision.recordable.body : decision.send;
  }

  /**
   * Stores the response with the handler's writes. A client error whose writes must not commit
   * (`rollbackOnClientError`, or a failed statement of the handler that aborted the transaction)
   * is stored without them: the transaction rolls back to just after the claim, which keeps the
   * key held, and the response alone is stored and committed.
   */
  private async storeInTransaction(
    transaction: IdempotencyTransactionHandle,
    exchange: Exchange,
    recordable: Recordable,
  ): Promise<void> {
    const stored = this.steps.toStored(exchange, recordable);
    const clientError = recordable.status >= 400;
    if (!(clientError && exchange.settings.rollbackOnClientError)) {
      try {
        await this.steps.bounded(transaction.completeAndCommit(stored, exchange.settings.ttlMs));
        return;
      } catch (error) {
        if (!(clientError && error instanceof HandlerTransactionAbortedError)) {
          throw error;
        }
      }
    }
    await this.steps.bounded(transaction.discardWritesAndComplete(stored, exchange.settings.ttlMs));
  }
}

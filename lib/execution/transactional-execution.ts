import type { CallHandler } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import { Observable, catchError, defer, from, mergeMap, throwError } from 'rxjs';
import { ACTIVE_TRANSACTION } from '../idempotency.constants';
import { waitDelayMs } from '../protocol/wait-backoff';
import type { ClaimRequest, ClaimResult } from '../store/claim-result.interface';
import {
  HandlerTransactionAbortedError,
  type IdempotencyTransactionHandle,
  type TransactionLimits,
  type TransactionalClaimResult,
  type TransactionalIdempotencyStore,
} from '../store/transactional-idempotency-store';
import { StoreTimeoutError } from './with-timeout';
import type { IdempotencyTransactionContext } from '../transaction/idempotency-transaction.context';
import type { Exchange, HandlerOutcome, Recordable } from './exchange';
import { type ExecutionDeps, ExecutionSteps } from './execution-steps';

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

/**
 * Transactional mode: the claim, the handler's writes and the stored response commit together in
 * one PostgreSQL transaction, or roll back together.
 */
export class TransactionalExecution extends ExecutionSteps {
  constructor(
    deps: ExecutionDeps,
    private readonly context: IdempotencyTransactionContext,
  ) {
    super(deps);
  }

  run(exchange: Exchange, next: CallHandler): Observable<unknown> {
    // buildPlan refuses transactional routes on any other store.
    const store = this.deps.store as TransactionalIdempotencyStore;
    return defer(() => this.claimInTransaction(store, exchange)).pipe(
      catchError((error: unknown) => {
        this.claimAnswered(exchange);
        return this.storeUnavailable(exchange, 'Transactional claim', error);
      }),
      mergeMap((result) => {
        this.claimAnswered(exchange);
        if (result.kind !== 'claimed') {
          return this.answerExisting(result, exchange);
        }
        this.report(exchange, 'claimed');
        return this.executeInTransaction(result.transaction, exchange, next);
      }),
    );
  }

  /**
   * Claims the key in a new transaction; for a finished key the same statement returns its stored
   * outcome (a replay), and the transaction ends unused. A duplicate of a key that another
   * transaction holds then polls with one read, holding no connection between looks, until the
   * holder commits (replay), rolls back (claim it) or the wait ends (409).
   */
  private async claimInTransaction(
    store: TransactionalIdempotencyStore,
    exchange: Exchange,
  ): Promise<
    | Extract<TransactionalClaimResult, { kind: 'claimed' }>
    | Exclude<ClaimResult, { kind: 'claimed' }>
  > {
    const deadline = Date.now() + exchange.settings.waitTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      // The first attempt claims at once, as nearly every key is new: a lookup first would cost
      // each first execution a round trip to save replays one (measured: see README). Waiting
      // duplicates look with the read alone, holding no connection between looks.
      let result: TransactionalClaimResult | null =
        attempt === 0 ? null : await this.bounded(store.lookup(exchange.claim));
      if (result === null) {
        result = await this.boundedTransactionalClaim(store, exchange.claim, {
          statementTimeoutMs: exchange.settings.statementTimeoutMs,
          // A statement the database leaves unanswered this much longer than its own timeout is
          // given up on, as a store call would be.
          graceMs: this.settings.storeTimeoutMs,
        });
      }
      if (result.kind !== 'busy' && result.kind !== 'in-flight') {
        return result;
      }
      const delay = waitDelayMs(attempt);
      if (exchange.settings.concurrency === 'reject' || Date.now() + delay > deadline) {
        // A transaction holding the key has no lease to report: its elapsed time is unknown, and
        // the route's lease bounds the estimate (see retryAfterMs).
        return result.kind === 'busy'
          ? { kind: 'in-flight', retryAfterMs: exchange.settings.lockTimeoutMs }
          : result;
      }
      await sleep(delay);
    }
  }

  private executeInTransaction(
    transaction: IdempotencyTransactionHandle,
    exchange: Exchange,
    next: CallHandler,
  ): Observable<unknown> {
    exchange.request[ACTIVE_TRANSACTION] = transaction.transaction;
    const active = { transaction: transaction.transaction, route: exchange.route.name };
    // Everything the handler starts runs in the transaction's async context.
    return new Observable<HandlerOutcome>((subscriber) =>
      this.context.run(active, () => this.runHandler(exchange, next).subscribe(subscriber)),
    ).pipe(
      mergeMap((outcome) => from(this.recordInTransaction(transaction, exchange, outcome))),
      catchError((error: unknown) =>
        error instanceof RecordingFailed
          ? this.storeUnavailable(exchange, error.step, error.cause)
          : throwError(() => error),
      ),
    );
  }

  private async recordInTransaction(
    transaction: IdempotencyTransactionHandle,
    exchange: Exchange,
    outcome: HandlerOutcome,
  ): Promise<unknown> {
    const decision = this.decide(exchange, outcome);
    if (decision.kind === 'release') {
      // Not awaited past the store timeout: a frozen database must not hold the answer.
      await this.bounded(transaction.rollback()).catch(() => undefined);
      if (decision.error !== undefined && transaction.isConnectionFailure(decision.error)) {
        // The handler failed because the transaction's connection did: nothing was committed,
        // and the client may retry, as after any store failure.
        throw new RecordingFailed('Handler connection', decision.error);
      }
      this.report(exchange, decision.notStarted ? 'not-started' : 'released', {
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
        await this.bounded(
          transaction.markNotReplayableAndCommit(decision.status, exchange.settings.ttlMs),
        );
      } else {
        await this.storeInTransaction(transaction, exchange, decision.recordable);
      }
    } catch (error) {
      // Either everything committed or nothing did; both make a retry safe (replay or rerun).
      // The rollback is not awaited: with a frozen database it would hold the answer as well.
      void transaction.rollback();
      throw new RecordingFailed('Commit', error);
    }
    const status = decision.kind === 'store' ? decision.recordable.status : decision.status;
    this.report(exchange, decision.kind === 'store' ? 'completed' : 'not-replayable', {
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
   * is stored without them: the transaction rolls back and the key is claimed again for the
   * response alone, in the same round trip. Should another request take the key in that instant,
   * its outcome is the one stored, and this client still gets its answer.
   */
  private async storeInTransaction(
    transaction: IdempotencyTransactionHandle,
    exchange: Exchange,
    recordable: Recordable,
  ): Promise<void> {
    const stored = this.toStored(exchange, recordable);
    const clientError = recordable.status >= 400;
    if (!(clientError && exchange.settings.rollbackOnClientError)) {
      try {
        await this.bounded(transaction.completeAndCommit(stored, exchange.settings.ttlMs));
        return;
      } catch (error) {
        if (!(clientError && error instanceof HandlerTransactionAbortedError)) {
          throw error;
        }
      }
    }
    await this.bounded(transaction.discardWritesAndComplete(stored, exchange.settings.ttlMs));
  }

  /** A transactional claim bounded by `storeTimeoutMs`; a late win is rolled back. */
  private boundedTransactionalClaim(
    store: TransactionalIdempotencyStore,
    request: ClaimRequest,
    limits: TransactionLimits,
  ): Promise<TransactionalClaimResult> {
    const claim = store.claimInTransaction(request, limits);
    return this.bounded(claim).catch((error: unknown) => {
      if (error instanceof StoreTimeoutError) {
        claim
          .then((late) => (late.kind === 'claimed' ? late.transaction.rollback() : undefined))
          .catch(() => undefined);
      }
      throw error;
    });
  }
}

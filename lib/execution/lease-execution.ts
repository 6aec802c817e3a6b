import type { CallHandler } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Observable, catchError, defer, from, mergeMap } from 'rxjs';
import { waitDelayMs } from '../protocol/wait-backoff';
import type { ClaimHandle, ClaimRequest, ClaimResult } from '../store/claim-result.interface';
import { StoreTimeoutError } from './with-timeout';
import type { Exchange, HandlerOutcome } from './exchange';
import { ExecutionSteps } from './execution-steps';

/**
 * Lease mode: the claim commits on its own, the handler runs, and its response is stored after
 * it. A claim whose process died is taken over when its lease ends.
 */
export class LeaseExecution extends ExecutionSteps {
  run(exchange: Exchange, next: CallHandler): Observable<unknown> {
    return defer(() => this.claimWithLease(exchange)).pipe(
      catchError((error: unknown) => {
        this.claimAnswered(exchange);
        return this.storeUnavailable(exchange, 'Claim', error);
      }),
      mergeMap((result) => {
        this.claimAnswered(exchange);
        if (result.kind !== 'claimed') {
          return this.answerExisting(result, exchange);
        }
        this.report(exchange, 'claimed');
        return this.executeWithLease(result.handle, exchange, next);
      }),
    );
  }

  /** Claims the key; in `wait` mode, a duplicate polls until the first one finishes or fails. */
  private async claimWithLease(exchange: Exchange): Promise<ClaimResult> {
    const deadline = Date.now() + exchange.settings.waitTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      const result = await this.boundedClaim(exchange.claim);
      const delay = waitDelayMs(attempt);
      if (
        result.kind !== 'in-flight' ||
        exchange.settings.concurrency === 'reject' ||
        Date.now() + delay > deadline
      ) {
        return result;
      }
      await sleep(delay);
    }
  }

  private executeWithLease(
    handle: ClaimHandle,
    exchange: Exchange,
    next: CallHandler,
  ): Observable<unknown> {
    const run = this.runHandler(exchange, next).pipe(
      // The record is written before the response leaves: a retry that arrives right after the
      // client got its answer must find it.
      mergeMap((outcome) => from(this.recordWithLease(handle, exchange, outcome))),
    );
    if (exchange.capturable) {
      return run;
    }
    // A handler that writes its own response (@Res()) answers before anything could be recorded
    // after it, so its key is marked spent before it runs: a retry must never run it again.
    return defer(() =>
      this.bounded(this.deps.store.markNotReplayable(handle, null, exchange.settings.ttlMs)),
    ).pipe(
      catchError((error: unknown) => {
        // Fail closed: the handler has not run, and must not run unrecorded.
        void this.release(handle, exchange, 'released', 503, error);
        return this.storeUnavailable(exchange, 'Marking', error);
      }),
      mergeMap(() => run),
    );
  }

  private async recordWithLease(
    handle: ClaimHandle,
    exchange: Exchange,
    outcome: HandlerOutcome,
  ): Promise<unknown> {
    const decision = this.decide(exchange, outcome);
    switch (decision.kind) {
      case 'release':
        await this.release(
          handle,
          exchange,
          decision.notStarted ? 'not-started' : 'released',
          decision.status,
          decision.error,
        );
        if (decision.rethrow) {
          throw decision.error;
        }
        return decision.send;
      case 'not-replayable':
        await this.write(exchange, 'not-replayable', decision.status, () =>
          this.deps.store.markNotReplayable(handle, decision.status, exchange.settings.ttlMs),
        );
        if (decision.rethrow) {
          throw decision.error;
        }
        return decision.send;
      case 'store': {
        const stored = this.toStored(exchange, decision.recordable);
        await this.write(exchange, 'completed', stored.status, () =>
          this.deps.store.complete(handle, stored, exchange.settings.ttlMs),
        );
        return decision.recordable.body;
      }
    }
  }

  /**
   * A lease-mode write after the handler ran. A failure is logged, not sent: the handler has run
   * and the client gets its real answer; without a record the key stays claimed until its lease
   * ends, so a retry before then gets 409, not a second execution.
   */
  private async write(
    exchange: Exchange,
    outcome: 'completed' | 'not-replayable',
    status: number | null,
    operation: () => Promise<boolean>,
  ): Promise<void> {
    try {
      const current = await this.bounded(operation());
      this.reportWrite(exchange, current, outcome, status ?? undefined);
    } catch (error) {
      this.report(exchange, 'store-error', { status: status ?? undefined, error });
      this.logger.error(
        `Recording key ${this.keyLabel(exchange)} (${outcome}) failed: ${String(error)}`,
      );
    }
  }

  private async release(
    handle: ClaimHandle,
    exchange: Exchange,
    outcome: 'released' | 'not-started',
    status: number,
    cause: unknown,
  ): Promise<void> {
    try {
      const current = await this.bounded(this.deps.store.release(handle));
      if (current) {
        this.report(exchange, outcome, { status, error: cause });
      } else {
        this.reportWrite(exchange, false, 'released', status);
      }
    } catch (error) {
      // The key stays claimed until its lease ends; a retry after that runs again.
      this.report(exchange, 'store-error', { status, error });
      this.logger.error(`Releasing key ${this.keyLabel(exchange)} failed: ${String(error)}`);
    }
  }

  private reportWrite(
    exchange: Exchange,
    current: boolean,
    outcome: 'completed' | 'not-replayable' | 'released',
    status: number | undefined,
  ): void {
    if (current) {
      this.report(exchange, outcome, { status });
      return;
    }
    this.report(exchange, 'lease-lost', { status });
    this.logger.warn(
      `Key ${this.keyLabel(exchange)} finished after its ${exchange.settings.lockTimeoutMs} ms lease was taken over; its result was not stored. Raise lockTimeoutMs above the route's slowest execution.`,
    );
  }

  /**
   * A claim bounded by `storeTimeoutMs`. A claim that times out may still land once the database
   * answers; nobody would then hold it, and the key would be stuck until its lease ends although
   * the client was told to retry. So a late win is released at once (its token makes that safe).
   */
  private boundedClaim(request: ClaimRequest): Promise<ClaimResult> {
    const claim = this.deps.store.claim(request);
    return this.bounded(claim).catch((error: unknown) => {
      if (error instanceof StoreTimeoutError) {
        claim
          .then((late) => (late.kind === 'claimed' ? this.deps.store.release(late.handle) : false))
          .catch(() => undefined);
      }
      throw error;
    });
  }
}

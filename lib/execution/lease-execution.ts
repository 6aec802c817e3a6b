import { performance } from 'node:perf_hooks';
import type { CallHandler } from '@nestjs/common';
import { type Observable, defer } from 'rxjs';
import type { ResolvedStepsSettings } from '../idempotency-options.defaults';
import { IdempotencyStoreUnavailableException } from '../idempotency.exceptions';
import { RequestSteps } from '../steps/request-steps';
import type { ClaimHandle, ClaimResult } from '../store/claim-result.interface';
import {
  type IdempotencyRecoveryPoints,
  type IdempotencyStepTransactions,
  type RecordedStep,
  keepsRecoveryPoints,
  runsStepTransactions,
} from '../store/recovery-points.interface';
import type { IdempotencyStore } from '../store/idempotency-store';
import type { Exchange, HandlerOutcome, RecordDecision } from './exchange';
import type { ExecutionSteps } from './execution-steps';
import { waitWhileHeld } from './wait-while-held';
import { boundedClaim } from './with-timeout';

/**
 * Lease mode: the claim commits on its own, the handler runs, and its response is stored after
 * it. A claim whose process died is taken over when its lease ends.
 */
export class LeaseExecution {
  private readonly store: IdempotencyStore;
  /** Where the module has `steps` options and the store keeps recovery points: both; else null. */
  private readonly recoveryPoints: {
    store: IdempotencyRecoveryPoints;
    transactions: IdempotencyStepTransactions | null;
    settings: ResolvedStepsSettings;
  } | null;

  constructor(private readonly steps: ExecutionSteps) {
    this.store = steps.store;
    const settings = steps.settings.steps;
    this.recoveryPoints =
      settings !== null && keepsRecoveryPoints(this.store)
        ? {
            store: this.store,
            transactions: runsStepTransactions(this.store) ? this.store : null,
            settings,
          }
        : null;
  }

  /** Claims the exchange's key, runs the handler when it won, and answers. */
  run(exchange: Exchange, next: CallHandler): Observable<unknown> {
    return defer(() =>
      this.steps.claimThen(
        exchange,
        'Claim',
        () => this.claimWithLease(exchange),
        ({ handle, steps }) => this.execute(handle, steps ?? [], exchange, next),
      ),
    );
  }

  private async execute(
    handle: ClaimHandle,
    recorded: readonly RecordedStep[],
    exchange: Exchange,
    next: CallHandler,
  ): Promise<unknown> {
    if (!exchange.capturable) {
      // A handler that writes its own response (@Res()) answers before anything could be
      // recorded after it, so its key is marked spent before it runs: a retry must never run it
      // again.
      try {
        await this.steps.recording(exchange, 'mark_not_replayable', () =>
          this.steps.bounded(this.store.markNotReplayable(handle, null, exchange.settings.ttlMs)),
        );
      } catch (error) {
        // Fail closed: the handler has not run, and must not run unrecorded.
        void this.release(handle, exchange, 'released', 503, error);
        throw this.steps.storeUnavailable(exchange, 'Marking', error);
      }
    }
    const outcome = await this.runHandler(handle, recorded, exchange, next);
    // The record is written before the response leaves: a retry that arrives right after the
    // client got its answer must find it.
    return this.recordWithLease(handle, exchange, outcome);
  }

  /**
   * Runs the handler, with its steps (`IdempotencySteps`) where the module has `steps` options
   * and the store keeps them: the ones `recorded` by earlier claims of the key answer without
   * running again. The handler has ended once its steps have: a step it did not wait for is
   * waited for here, so that the key is never released while that step's work runs.
   */
  private async runHandler(
    handle: ClaimHandle,
    recorded: readonly RecordedStep[],
    exchange: Exchange,
    next: CallHandler,
  ): Promise<HandlerOutcome> {
    const points = this.recoveryPoints;
    const context = points === null ? null : this.steps.stepsContext();
    if (points === null || context === null) {
      return this.steps.runHandler(exchange, next);
    }
    const requestSteps = new RequestSteps({
      ...points,
      handle,
      fingerprint: exchange.claim.fingerprint,
      recorded,
      lockTimeoutMs: exchange.settings.lockTimeoutMs,
      claimSentAt: exchange.claimSentAt ?? exchange.startedAt,
      unavailable: stepsUnavailable(exchange),
      bounded: (call) => this.steps.bounded(call),
      storeUnavailable: (error) => {
        this.steps.logger.error(
          `Recording a step of key ${this.steps.keyLabel(exchange)} failed: ${String(error)}`,
        );
        return new IdempotencyStoreUnavailableException();
      },
    });
    const outcome = await context.run(requestSteps, () => this.steps.runHandler(exchange, next));
    await requestSteps.close();
    // Only a refusal that reaches the client is sent as problem+json: a handler may catch one
    // and answer otherwise.
    if (!outcome.ok && requestSteps.threw(outcome.error)) {
      this.steps.problem(exchange.response, outcome.error);
    }
    return outcome;
  }

  /** Claims the key; in `wait` mode, a duplicate polls until the first one finishes or fails. */
  private claimWithLease(exchange: Exchange): Promise<ClaimResult> {
    return waitWhileHeld(
      exchange,
      () => {
        if (this.recoveryPoints !== null) {
          // Only steps read it (their lease's end, on this process's clock).
          exchange.claimSentAt = performance.now();
        }
        return boundedClaim(
          this.store.claim(exchange.claim),
          this.steps.settings.storeTimeoutMs,
          (late) => (late.kind === 'claimed' ? this.store.release(late.handle) : undefined),
        );
      },
      (result) => result.kind === 'in-flight',
    );
  }

  private async recordWithLease(
    handle: ClaimHandle,
    exchange: Exchange,
    outcome: HandlerOutcome,
  ): Promise<unknown> {
    let decision: RecordDecision;
    try {
      decision = this.steps.decide(exchange, outcome);
    } catch (error) {
      // The handler ran, but its answer cannot be made (a result JSON cannot serialize, a hook
      // that threw): the key is spent, so a retry never runs it again, and the error goes on to
      // the exception filters (500).
      decision = { kind: 'not-replayable', status: 500, error, rethrow: true, send: undefined };
    }
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
          this.store.markNotReplayable(handle, decision.status, exchange.settings.ttlMs),
        );
        if (decision.rethrow) {
          throw decision.error;
        }
        return decision.send;
      case 'store': {
        const stored = this.steps.toStored(exchange, decision.recordable);
        await this.write(exchange, 'completed', stored.status, () =>
          this.store.complete(handle, stored, exchange.settings.ttlMs),
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
      const current = await this.steps.recording(
        exchange,
        outcome === 'completed' ? 'complete' : 'mark_not_replayable',
        () => this.steps.bounded(operation()),
      );
      this.reportWrite(exchange, current, outcome, status ?? undefined);
    } catch (error) {
      this.steps.report(exchange, 'store-error', { status: status ?? undefined, error });
      this.steps.logger.error(
        `Recording key ${this.steps.keyLabel(exchange)} (${outcome}) failed: ${String(error)}`,
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
      const current = await this.steps.recording(exchange, 'release', () =>
        this.steps.bounded(this.store.release(handle)),
      );
      if (current) {
        this.steps.report(exchange, outcome, { status, error: cause });
      } else {
        this.reportWrite(exchange, false, 'released', status);
      }
    } catch (error) {
      // The key stays claimed until its lease ends; a retry after that runs again.
      this.steps.report(exchange, 'store-error', { status, error });
      this.steps.logger.error(
        `Releasing key ${this.steps.keyLabel(exchange)} failed: ${String(error)}`,
      );
    }
  }

  private reportWrite(
    exchange: Exchange,
    current: boolean,
    outcome: 'completed' | 'not-replayable' | 'released',
    status: number | undefined,
  ): void {
    if (current) {
      this.steps.report(exchange, outcome, { status });
      return;
    }
    this.steps.report(exchange, 'lease-lost', { status });
    this.steps.logger.warn(
      `Key ${this.steps.keyLabel(exchange)} finished after its ${exchange.settings.lockTimeoutMs} ms lease was taken over; its result was not stored. Raise lockTimeoutMs above the route's slowest execution.`,
    );
  }
}

/**
 * Why a request's steps cannot be recorded, if they cannot: a retry must be told apart from
 * another request with the same key (its fingerprint), and must find the record its steps wrote
 * still open (a route that writes its own response has its key marked spent before it runs).
 */
function stepsUnavailable(exchange: Exchange): string | undefined {
  if (exchange.claim.fingerprint === null) {
    return 'This route does not fingerprint its requests, so a retry could not be told from another request with its key.';
  }
  if (!exchange.capturable) {
    return 'This route writes its own response (@Res()), so its key is spent before it runs.';
  }
  return undefined;
}

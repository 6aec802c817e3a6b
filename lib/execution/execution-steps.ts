import { type CallHandler, HttpException, type Logger } from '@nestjs/common';
import { performance } from 'node:perf_hooks';
import { rejectedByPipes } from '../http/rejected-by-pipes';
import { isStreamLike } from '../http/route-plan';
import type { ResolvedModuleSettings } from '../idempotency-options.defaults';
import {
  type IdempotencyException,
  IdempotencyKeyInFlightException,
  IdempotencyKeyMismatchException,
  IdempotencyResponseNotReplayableException,
  IdempotencyStoreUnavailableException,
} from '../idempotency.exceptions';
import type { IdempotencyOutcome } from '../interfaces/idempotency-outcome.interface';
import { estimateRetryAfterMs } from '../protocol/retry-after';
import type { ClaimResult } from '../store/claim-result.interface';
import type { IdempotencyStore } from '../store/idempotency-store';
import type { StoredResponse } from '../store/stored-response.interface';
import type { IdempotencyStepsContext } from '../steps/idempotency-steps.context';
import type { IdempotencyTelemetry } from '../telemetry/idempotency-telemetry';
import { CLAIM_OUTCOMES } from './claim-outcomes';
import type { RecordAction } from '../telemetry/telemetry-names';
import type { ReplyWriter } from './reply-writer';
import { withTimeout } from './with-timeout';
import type {
  Exchange,
  HandlerOutcome,
  Recordable,
  RecordDecision,
  ReportedRequest,
} from './exchange';
import type { OutcomeDetails, OutcomeReporter } from './outcome-reporter';

/** What an execution needs from the interceptor that runs it. */
export interface ExecutionDeps {
  settings: ResolvedModuleSettings;
  store: IdempotencyStore;
  /** How the transport's answer is read and written. */
  writer: ReplyWriter;
  logger: Logger;
  reporter: OutcomeReporter;
  /** The interceptor's (overridable) rendering of a stored client error. */
  renderStoredError: (error: HttpException) => unknown;
  /**
   * The module's telemetry, null when off or not installed. A function: the interceptor receives
   * it as an injected property, set after the constructor that builds these steps.
   */
  telemetry: () => IdempotencyTelemetry | null;
  /** Where handlers find their steps (`IdempotencySteps`); a function, as `telemetry`. */
  stepsContext: () => IdempotencyStepsContext | null;
}

/**
 * The steps lease mode and transactional mode share: running the handler, deciding what to
 * record, answering for a key someone else holds or finished, and reporting outcomes. Each mode
 * holds one, and the interceptor uses it for its own refusals.
 */
export class ExecutionSteps {
  readonly settings: ResolvedModuleSettings;
  readonly store: IdempotencyStore;
  readonly logger: Logger;
  private readonly writer: ReplyWriter;

  constructor(private readonly deps: ExecutionDeps) {
    this.settings = deps.settings;
    this.store = deps.store;
    this.writer = deps.writer;
    this.logger = deps.logger;
  }

  /**
   * What both modes do around their claim: a failed claim is a 503; a key someone else holds or
   * finished is answered here (a replay or a refusal); a won claim is reported and run.
   */
  async claimThen<Won extends { kind: 'claimed' }>(
    exchange: Exchange,
    step: string,
    claim: () => Promise<Won | Exclude<ClaimResult, { kind: 'claimed' }>>,
    run: (won: Won) => Promise<unknown>,
  ): Promise<unknown> {
    let result: Won | Exclude<ClaimResult, { kind: 'claimed' }>;
    const telemetry = this.deps.telemetry();
    try {
      result = await (telemetry === null ? claim() : telemetry.traceClaim(exchange, claim));
    } catch (error) {
      this.claimAnswered(exchange, telemetry, 'store-error');
      throw this.storeUnavailable(exchange, step, error);
    }
    this.claimAnswered(exchange, telemetry, CLAIM_OUTCOMES[result.kind]);
    if (result.kind !== 'claimed') {
      return this.answerExisting(result as Exclude<ClaimResult, { kind: 'claimed' }>, exchange);
    }
    this.report(exchange, 'claimed');
    return run(result as Won);
  }

  /** Marks the moment the claim answered, for outcome events and metrics. */
  private claimAnswered(
    exchange: Exchange,
    telemetry: IdempotencyTelemetry | null,
    outcome: IdempotencyOutcome,
  ): void {
    exchange.claimDurationMs = performance.now() - exchange.startedAt;
    telemetry?.claimAnswered(exchange, outcome);
  }

  /** Runs a write of the key's record, in an `idempotency.record` span when telemetry is on. */
  recording<T>(exchange: Exchange, action: RecordAction, write: () => Promise<T>): Promise<T> {
    const telemetry = this.deps.telemetry();
    return telemetry === null ? write() : telemetry.traceRecord(exchange, action, write);
  }

  /**
   * Runs the handler to its last value (undefined when it emits none), turning an error into an
   * outcome to record. A promise, subscribed to directly: the steps around it are plain async
   * code, so each request pays for one Observable (Nest's) rather than a chain of operators.
   */
  runHandler(exchange: Exchange, next: CallHandler): Promise<HandlerOutcome> {
    return new Promise<HandlerOutcome>((resolve) => {
      const startedAt = performance.now();
      let last: unknown = undefined;
      const failed = (error: unknown): void => {
        const refused = rejectedByPipes(exchange.request);
        // Pipes that refused the request ran instead of the handler: their time is not a run's.
        const durationMs = refused
          ? performance.now() - startedAt
          : this.handlerEnded(exchange, startedAt);
        if (!refused) {
          exchange.route.durations.record(durationMs);
        }
        resolve({ ok: false, error, refusedBeforeHandler: refused, durationMs });
      };
      try {
        next.handle().subscribe({
          next: (value: unknown) => {
            last = value;
          },
          error: failed,
          complete: () => {
            const durationMs = this.handlerEnded(exchange, startedAt);
            exchange.route.durations.record(durationMs);
            resolve({ ok: true, value: last, refusedBeforeHandler: false, durationMs });
          },
        });
      } catch (error) {
        failed(error);
      }
    });
  }

  private handlerEnded(exchange: Exchange, startedAt: number): number {
    const durationMs = performance.now() - startedAt;
    exchange.handlerDurationMs = durationMs;
    return durationMs;
  }

  /**
   * What to record for a handler's outcome; the one place that decides between storing,
   * marking not replayable and releasing. Sets the status and type of what it will send.
   */
  decide(exchange: Exchange, outcome: HandlerOutcome): RecordDecision {
    const { settings, response } = exchange;
    if (!outcome.ok) {
      const error = outcome.error;
      const status = error instanceof HttpException ? error.getStatus() : 500;
      // A request that Nest's pipes refused (a ValidationPipe's 400) never reached its handler:
      // its key stays free for the corrected request, as Stripe does.
      const notStarted = outcome.refusedBeforeHandler;
      if (notStarted || !(error instanceof HttpException) || !settings.storeStatus(status)) {
        return { kind: 'release', notStarted, status, error, rethrow: true, send: undefined };
      }
      if (!exchange.capturable) {
        // The exception filters render this one as usual; the key stays spent.
        return { kind: 'not-replayable', status, error, rethrow: true, send: undefined };
      }
      this.writer.prepareJsonError(response, status);
      return this.decideBody(exchange, {
        status,
        body: JSON.stringify(this.deps.renderStoredError(error)),
      });
    }
    const status = this.writer.statusOf(response);
    if (!exchange.capturable || isStreamLike(outcome.value)) {
      return { kind: 'not-replayable', status, rethrow: false, send: outcome.value };
    }
    return this.decideBody(exchange, {
      status,
      body: this.writer.serialize(response, outcome.value),
    });
  }

  private decideBody(exchange: Exchange, recordable: Recordable): RecordDecision {
    const size = recordable.body === undefined ? 0 : Buffer.byteLength(recordable.body, 'utf8');
    if (size > exchange.settings.maxResponseBytes) {
      return {
        kind: 'not-replayable',
        status: recordable.status,
        rethrow: false,
        send: recordable.body,
      };
    }
    if (!exchange.settings.storeStatus(recordable.status)) {
      return {
        kind: 'release',
        notStarted: false,
        status: recordable.status,
        rethrow: false,
        send: recordable.body,
      };
    }
    return { kind: 'store', recordable };
  }

  toStored(exchange: Exchange, recordable: Recordable): StoredResponse {
    return {
      status: recordable.status,
      headers: this.writer.captureHeaders(exchange.response, exchange.settings.replayHeaders),
      body: recordable.body === undefined ? null : Buffer.from(recordable.body, 'utf8'),
    };
  }

  /** The answer for a key someone else holds or finished: the replayed body, or a refusal thrown. */
  private answerExisting(
    result: Exclude<ClaimResult, { kind: 'claimed' }>,
    exchange: Exchange,
  ): unknown {
    switch (result.kind) {
      case 'replay':
        this.report(exchange, 'replayed', { status: result.response.status });
        return this.writer.replay(exchange.response, result.response);
      case 'in-flight':
        this.report(exchange, 'conflict', { status: 409 });
        throw this.problem(
          exchange.response,
          new IdempotencyKeyInFlightException(this.retryAfterMs(exchange, result.retryAfterMs)),
        );
      case 'mismatch':
        this.report(exchange, 'mismatch', { status: 422 });
        throw this.problem(exchange.response, new IdempotencyKeyMismatchException());
      case 'not-replayable':
        this.report(exchange, 'not-replayable', { status: 410 });
        throw this.problem(
          exchange.response,
          new IdempotencyResponseNotReplayableException(result.status),
        );
    }
  }

  /**
   * When a duplicate should come back: from how long the route's recent executions took, less
   * what the running one has had of its lease, within what is left of that lease.
   */
  private retryAfterMs(exchange: Exchange, remainingLeaseMs: number): number {
    const elapsedMs = Math.max(0, exchange.settings.lockTimeoutMs - remainingLeaseMs);
    return estimateRetryAfterMs(exchange.route.durations.typicalMs(), elapsedMs, remainingLeaseMs);
  }

  /** Reports and logs a failed store step; returns the 503 to throw. */
  storeUnavailable(exchange: Exchange, step: string, error: unknown): IdempotencyException {
    this.report(exchange, 'store-error', { status: 503, error });
    this.logger.error(`${step} of key ${this.keyLabel(exchange)} failed: ${String(error)}`);
    return this.problem(exchange.response, new IdempotencyStoreUnavailableException());
  }

  /** Sets the problem+json type and the exception's headers; returns the exception to throw. */
  problem(response: unknown, exception: IdempotencyException): IdempotencyException {
    this.writer.prepareProblem(response, exception);
    return exception;
  }

  /** How a key appears in logs: its hash, or the key itself with `logRawKeys` (development). */
  keyLabel(exchange: Exchange): string {
    return this.settings.logRawKeys ? JSON.stringify(exchange.claim.key) : `#${exchange.keyHash}`;
  }

  /** Where handlers find their steps; null outside Nest's injector. */
  stepsContext(): IdempotencyStepsContext | null {
    return this.deps.stepsContext();
  }

  bounded<T>(promise: Promise<T>): Promise<T> {
    return withTimeout(promise, this.settings.storeTimeoutMs);
  }

  report(
    subject: ReportedRequest | Exchange,
    outcome: IdempotencyOutcome,
    details: OutcomeDetails = {},
  ): void {
    this.deps.reporter.report(subject, outcome, details);
  }
}

import type { Attributes, Counter, Histogram } from '@opentelemetry/api';
import type { Exchange, ReportedRequest } from '../execution/exchange';
import type { IdempotencyOutcome } from '../interfaces/idempotency-outcome.interface';
import type { ClaimResult } from '../store/claim-result.interface';
import { withError } from './error-type';
import { IdempotencySpans } from './idempotency-spans';
import type { OpenTelemetryApi } from './load-opentelemetry';
import { RequestAttributes } from './request-attributes';
import {
  ATTRIBUTE,
  METRIC,
  type RecordAction,
  REQUEST_BUCKETS,
  SCOPE_NAME,
  TASK_BUCKETS,
} from './telemetry-names';

/**
 * The module's metrics and spans, on the global OpenTelemetry providers. Made once per
 * registration, when telemetry is on and `@opentelemetry/api` is installed; without an SDK its
 * instruments are the API's no-ops.
 */
export class IdempotencyTelemetry {
  private readonly requests: Counter;
  private readonly claimDuration: Histogram;
  private readonly waitDuration: Histogram;
  private readonly handlerDuration: Histogram;
  private readonly purgeDeleted: Counter;
  private readonly purgeDuration: Histogram;
  private readonly maintenanceDuration: Histogram;
  private readonly spans: IdempotencySpans;
  private readonly attributes = new RequestAttributes();
  private readonly storeAttributes = new Map<object, Attributes>();

  constructor(api: OpenTelemetryApi) {
    const meter = api.metrics.getMeter(SCOPE_NAME);
    const seconds = (description: string, buckets: number[]) => ({
      unit: 's',
      description,
      advice: { explicitBucketBoundaries: buckets },
    });
    this.requests = meter.createCounter(METRIC.requests, {
      unit: '{request}',
      description: 'Requests on idempotent routes, each counted once by its outcome.',
    });
    this.claimDuration = meter.createHistogram(
      METRIC.claimDuration,
      seconds(
        "From the request reaching the module to the store's answer to its claim (key, scope and fingerprint included), waits excluded.",
        REQUEST_BUCKETS,
      ),
    );
    this.waitDuration = meter.createHistogram(
      METRIC.waitDuration,
      seconds('Time a duplicate waited for the request holding its key.', REQUEST_BUCKETS),
    );
    this.handlerDuration = meter.createHistogram(
      METRIC.handlerDuration,
      seconds('Time the handler of an idempotent request ran.', REQUEST_BUCKETS),
    );
    this.purgeDeleted = meter.createCounter(METRIC.purgeDeleted, {
      unit: '{record}',
      description: 'Expired idempotency records deleted by the purge.',
    });
    this.purgeDuration = meter.createHistogram(
      METRIC.purgeDuration,
      seconds('Duration of purge passes of expired idempotency records.', TASK_BUCKETS),
    );
    this.maintenanceDuration = meter.createHistogram(
      METRIC.maintenanceDuration,
      seconds("Duration of runs of an idempotency store's upkeep.", TASK_BUCKETS),
    );
    this.spans = new IdempotencySpans(api, api.trace.getTracer(SCOPE_NAME), this.attributes);
  }

  /**
   * Counts a request by how it ended, with its handler's duration when it ran; called with each of
   * its outcomes. `claimed` is a step, not an end. A request reported to end twice (a release
   * that fails after a refused mark) counts once, by the first.
   */
  requestOutcome(subject: ReportedRequest, outcome: IdempotencyOutcome): void {
    if (outcome === 'claimed' || subject.outcomeCounted) {
      return;
    }
    subject.outcomeCounted = true;
    const attributes = this.attributes.of(subject).withOutcome(outcome);
    this.requests.add(1, attributes);
    if (subject.handlerDurationMs !== undefined) {
      this.handlerDuration.record(subject.handlerDurationMs / 1000, attributes);
    }
  }

  /** Records how long the claim took, and how long it waited for a duplicate, by its answer. */
  claimAnswered(exchange: Exchange, outcome: IdempotencyOutcome): void {
    const attributes = this.attributes.of(exchange).withOutcome(outcome);
    const waitMs = exchange.waitDurationMs ?? 0;
    this.claimDuration.record(((exchange.claimDurationMs ?? 0) - waitMs) / 1000, attributes);
    if (exchange.waitDurationMs !== undefined) {
      this.waitDuration.record(waitMs / 1000, attributes);
    }
  }

  /** Runs `claim` in an `idempotency.claim` span, a child of the active one (the HTTP request's). */
  traceClaim<R extends { kind: ClaimResult['kind'] }>(
    exchange: Exchange,
    claim: () => Promise<R>,
  ): Promise<R> {
    return this.spans.claim(exchange, claim);
  }

  /**
   * Runs `write` in an `idempotency.record` span. A write that answers `false` found its claim
   * taken over (`lease_lost`).
   */
  traceRecord<T>(exchange: Exchange, action: RecordAction, write: () => Promise<T>): Promise<T> {
    return this.spans.record(exchange, action, write);
  }

  /** Records a purge pass of `store`: what it deleted, and how long it ran (`error` when it failed). */
  purgePass(store: object, durationMs: number, deleted: number, error: unknown): void {
    const attributes = this.attributesOfStore(store);
    this.purgeDeleted.add(deleted, attributes);
    this.purgeDuration.record(durationMs / 1000, withError(attributes, error));
  }

  /** Records a run of `store`'s upkeep (`error` when it failed). */
  maintenanceRun(store: object, durationMs: number, error: unknown): void {
    this.maintenanceDuration.record(
      durationMs / 1000,
      withError(this.attributesOfStore(store), error),
    );
  }

  private attributesOfStore(store: object): Attributes {
    let attributes = this.storeAttributes.get(store);
    if (attributes === undefined) {
      attributes = { [ATTRIBUTE.store]: store.constructor?.name || 'Object' };
      this.storeAttributes.set(store, attributes);
    }
    return attributes;
  }
}

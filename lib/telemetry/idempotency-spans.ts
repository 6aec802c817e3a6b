import type { Span, Tracer } from '@opentelemetry/api';
import { CLAIM_OUTCOMES } from '../execution/claim-outcomes';
import type { Exchange } from '../execution/exchange';
import type { ClaimResult } from '../store/claim-result.interface';
import { errorType } from './error-type';
import type { OpenTelemetryApi } from './load-opentelemetry';
import { type RequestAttributes, outcomeValue } from './request-attributes';
import { ATTRIBUTE, type RecordAction, SPAN } from './telemetry-names';

/** The outcome of a record write that went through, by `idempotency.outcome`. */
const WRITTEN: Readonly<Record<RecordAction, string>> = {
  complete: outcomeValue('completed'),
  mark_not_replayable: outcomeValue('not-replayable'),
  release: outcomeValue('released'),
};

/**
 * The spans of a request's store calls: `idempotency.claim` and `idempotency.record`, children of
 * the active span (the HTTP request's), with the key's hash and never the key.
 */
export class IdempotencySpans {
  constructor(
    private readonly api: OpenTelemetryApi,
    private readonly tracer: Tracer,
    private readonly attributes: RequestAttributes,
  ) {}

  /** Runs `claim` in an `idempotency.claim` span. */
  claim<R extends { kind: ClaimResult['kind'] }>(
    exchange: Exchange,
    claim: () => Promise<R>,
  ): Promise<R> {
    return this.traced(SPAN.claim, exchange, undefined, claim, (result) =>
      outcomeValue(CLAIM_OUTCOMES[result.kind]),
    );
  }

  /**
   * Runs `write` in an `idempotency.record` span. A write that answers `false` found its claim
   * taken over (`lease_lost`).
   */
  record<T>(exchange: Exchange, action: RecordAction, write: () => Promise<T>): Promise<T> {
    return this.traced(SPAN.record, exchange, action, write, (result) =>
      result === false ? outcomeValue('lease-lost') : WRITTEN[action],
    );
  }

  private traced<T>(
    name: string,
    exchange: Exchange,
    action: RecordAction | undefined,
    run: () => Promise<T>,
    outcomeOf: (result: T) => string,
  ): Promise<T> {
    const { context, trace } = this.api;
    const span = this.tracer.startSpan(name, { attributes: this.attributes.of(exchange).route });
    if (!span.isRecording()) {
      // No SDK, or sampled out: nothing of it is kept, so the store call runs as it would
      // untraced, without the span made active or waited on. Its own spans, if any, attach to
      // the request's.
      return run();
    }
    span.setAttribute(ATTRIBUTE.keyHash, exchange.keyHash);
    if (action !== undefined) {
      span.setAttribute(ATTRIBUTE.recordAction, action);
    }
    return context.with(trace.setSpan(context.active(), span), async () => {
      try {
        const result = await run();
        span.setAttribute(ATTRIBUTE.outcome, outcomeOf(result));
        return result;
      } catch (error) {
        this.failed(span, error);
        throw error;
      } finally {
        span.end();
      }
    });
  }

  private failed(span: Span, error: unknown): void {
    span.setAttribute(ATTRIBUTE.outcome, outcomeValue('store-error'));
    span.setAttribute(ATTRIBUTE.errorType, errorType(error));
    span.recordException(error instanceof Error ? error : String(error));
    span.setStatus({ code: this.api.SpanStatusCode.ERROR, message: String(error) });
  }
}

import type { Attributes } from '@opentelemetry/api';
import type { ReportedRequest } from '../execution/exchange';
import { matchedPathTemplate } from '../http/route-template';
import type { IdempotencyOutcome } from '../interfaces/idempotency-outcome.interface';
import { ATTRIBUTE, KNOWN_METHODS } from './telemetry-names';

/** The attribute sets of one route template and method, made once and reused by every request. */
export class RouteAttributes {
  /** `http.route` and `http.request.method`. */
  readonly route: Attributes;
  private readonly byOutcome = new Map<IdempotencyOutcome, Attributes>();

  /** `template` undefined: the platform named none, and `http.route` is left out. */
  constructor(template: string | undefined, method: string) {
    const known = KNOWN_METHODS.has(method) ? method : '_OTHER';
    this.route =
      template === undefined
        ? { [ATTRIBUTE.method]: known }
        : { [ATTRIBUTE.route]: template, [ATTRIBUTE.method]: known };
  }

  /** The route's attributes with `idempotency.outcome`. */
  withOutcome(outcome: IdempotencyOutcome): Attributes {
    let attributes = this.byOutcome.get(outcome);
    if (attributes === undefined) {
      attributes = { ...this.route, [ATTRIBUTE.outcome]: outcomeValue(outcome) };
      this.byOutcome.set(outcome, attributes);
    }
    return attributes;
  }
}

/**
 * Attribute sets by route template and method. Recording with the same objects again spares each
 * request the allocation of its own; the sets are bounded by the application's routes, since the
 * template is the one the platform matched. Where it names none, `http.route` is left out, as the
 * semantic conventions ask, rather than filled with something that is not a path template.
 */
export class RequestAttributes {
  private readonly byTemplate = new Map<string | undefined, Map<string, RouteAttributes>>();

  of(subject: ReportedRequest): RouteAttributes {
    const template = matchedPathTemplate(subject.request);
    let byMethod = this.byTemplate.get(template);
    if (byMethod === undefined) {
      byMethod = new Map();
      this.byTemplate.set(template, byMethod);
    }
    let attributes = byMethod.get(subject.method);
    if (attributes === undefined) {
      attributes = new RouteAttributes(template, subject.method);
      byMethod.set(subject.method, attributes);
    }
    return attributes;
  }
}

/** An outcome as an attribute value: the `onOutcome` name in snake_case (`key-missing` → `key_missing`). */
export function outcomeValue(outcome: IdempotencyOutcome): string {
  return outcome.replaceAll('-', '_');
}

import type { Attributes } from '@opentelemetry/api';
import { ATTRIBUTE } from './telemetry-names';

/** The error's class name (`StoreTimeoutError`, `QueryFailedError`): a bounded set of values. */
export function errorType(error: unknown): string {
  return error instanceof Error ? error.constructor.name || error.name : '_OTHER';
}

/** `attributes`, with `error.type` when a pass failed. Failures are rare: their sets are made anew. */
export function withError(attributes: Attributes, error: unknown): Attributes {
  return error === undefined
    ? attributes
    : { ...attributes, [ATTRIBUTE.errorType]: errorType(error) };
}

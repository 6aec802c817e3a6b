import type { Attributes } from '@opentelemetry/api';
import { errorClassName } from '../error-class-name';
import { ATTRIBUTE } from './telemetry-names';

/** `error.type`: the error's class name, `_OTHER` for a thrown value that is not an object. */
export function errorType(error: unknown): string {
  return errorClassName(error) ?? '_OTHER';
}

/** `attributes`, with `error.type` when a pass failed. Failures are rare: their sets are made anew. */
export function withError(attributes: Attributes, error: unknown): Attributes {
  return error === undefined
    ? attributes
    : { ...attributes, [ATTRIBUTE.errorType]: errorType(error) };
}

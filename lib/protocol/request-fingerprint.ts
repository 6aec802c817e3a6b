import { hash } from 'node:crypto';
import type {
  FingerprintOptions,
  IdempotencyRequestInfo,
} from '../interfaces/idempotency-options.interface';
import { canonicalJson } from './canonical-json';

/**
 * The request fingerprint stored with a key: a retry must match it, or it gets 422.
 * `null` when fingerprinting is turned off.
 */
export function requestFingerprint(
  request: IdempotencyRequestInfo,
  options: FingerprintOptions | undefined,
  excluded: ReadonlySet<string>,
): string | null {
  if (options?.enabled === false) {
    return null;
  }
  if (options?.compute) {
    return sha256(options.compute(request));
  }
  return sha256(`${request.method}\n${request.url}\n${canonicalJson(request.body, excluded)}`);
}

/** SHA-256 of a string, hex. Also how keys are written to logs. */
export function sha256(text: string): string {
  return hash('sha256', text, 'hex');
}

import { createHmac } from 'node:crypto';

/** What a step's key is derived from: the request's scope, key and fingerprint, and the step. */
export interface StepKeySource {
  scope: string;
  key: string;
  fingerprint: string;
  step: string;
}

/**
 * The key a step passes downstream as its own `Idempotency-Key`: an HMAC-SHA256 of the scope, the
 * request's key and fingerprint, and the step's name, base64url (43 characters). The same on every
 * attempt of the request, different for each step, scope and key, and for another request sent
 * with the key once it expired (its fingerprint differs); it reveals none of them to the service
 * it is sent to.
 */
export function deriveStepKey(secret: Buffer, source: StepKeySource): string {
  const { scope, key, fingerprint, step } = source;
  return createHmac('sha256', secret)
    .update(JSON.stringify([scope, key, fingerprint, step]))
    .digest('base64url');
}

import { createHmac } from 'node:crypto';

/**
 * The key a step passes downstream as its own `Idempotency-Key`: an HMAC-SHA256 of the scope, the
 * request's key and the step's name, base64url (43 characters). The same on every attempt of the
 * request, different for each step, scope and key, and it reveals neither to the service it is
 * sent to.
 */
export function deriveStepKey(secret: Buffer, scope: string, key: string, step: string): string {
  return createHmac('sha256', secret)
    .update(JSON.stringify([scope, key, step]))
    .digest('base64url');
}

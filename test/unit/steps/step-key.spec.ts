import { deriveStepKey } from '../../../lib/steps/step-key';

const secret = Buffer.from('a test secret of at least thirty-two bytes');
const source = { scope: 'user-1', key: 'order-42', fingerprint: 'fp-1', step: 'charge' };

describe('deriveStepKey', () => {
  it('is the same for the same request and step, as 43 base64url characters', () => {
    expect(deriveStepKey(secret, source)).toBe(deriveStepKey(secret, { ...source }));
    expect(deriveStepKey(secret, source)).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('differs for another step, scope, key, request body (fingerprint) or secret', () => {
    const keys = [
      deriveStepKey(secret, source),
      deriveStepKey(secret, { ...source, step: 'ship' }),
      deriveStepKey(secret, { ...source, scope: 'user-2' }),
      deriveStepKey(secret, { ...source, key: 'order-43' }),
      deriveStepKey(secret, { ...source, fingerprint: 'fp-2' }),
      deriveStepKey(Buffer.from('another secret, also thirty-two bytes long'), source),
    ];
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('keeps apart values that a separator would join', () => {
    expect(deriveStepKey(secret, { ...source, key: 'a', fingerprint: 'b,c' })).not.toBe(
      deriveStepKey(secret, { ...source, key: 'a,b', fingerprint: 'c' }),
    );
  });
});

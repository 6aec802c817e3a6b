import { type ExistingKey, decideExistingKey } from '../../../lib/protocol/claim-decision';
import type { StoredResponse } from '../../../lib/store/stored-response.interface';

const RESPONSE: StoredResponse = {
  status: 201,
  headers: { 'content-type': 'application/json' },
  body: Buffer.from('{"id":1}'),
};

function existing(overrides: Partial<ExistingKey>): ExistingKey {
  return {
    state: 'completed',
    fingerprint: 'fp-1',
    leaseLeftMs: 0,
    response: RESPONSE,
    status: null,
    ...overrides,
  };
}

describe('decideExistingKey', () => {
  it.each<[string, Partial<ExistingKey>]>([
    ['completed', { state: 'completed' }],
    ['not replayable', { state: 'not_replayable', status: 500, response: null }],
    ['in flight', { state: 'in_flight', leaseLeftMs: 5_000, response: null }],
    ['in flight past its lease', { state: 'in_flight', leaseLeftMs: 0, response: null }],
  ])('answers mismatch for a different fingerprint when the key is %s', (_name, state) => {
    expect(decideExistingKey(existing(state), 'fp-2')).toEqual({ kind: 'mismatch' });
  });

  it('replays the stored response of a completed key', () => {
    const decision = decideExistingKey(existing({}), 'fp-1');
    expect(decision).toEqual({ kind: 'replay', response: RESPONSE });
  });

  it('retries when a completed key has no stored response (it changed under the claim)', () => {
    expect(decideExistingKey(existing({ response: null }), 'fp-1')).toEqual({ kind: 'retry' });
  });

  it.each([500, null])('reports a not-replayable key with its status (%p)', (status) => {
    const key = existing({ state: 'not_replayable', status, response: null });
    expect(decideExistingKey(key, 'fp-1')).toEqual({ kind: 'not-replayable', status });
  });

  it('answers in-flight with the lease time left while the lease runs', () => {
    const key = existing({ state: 'in_flight', leaseLeftMs: 1_500, response: null });
    expect(decideExistingKey(key, 'fp-1')).toEqual({ kind: 'in-flight', retryAfterMs: 1_500 });
  });

  it.each([0, -250])('retries an in-flight key whose lease has ended (%p ms left)', (left) => {
    const key = existing({ state: 'in_flight', leaseLeftMs: left, response: null });
    expect(decideExistingKey(key, 'fp-1')).toEqual({ kind: 'retry' });
  });

  // A null fingerprint means fingerprinting was off on one side: nothing to compare.
  it.each<[string, string | null, string | null]>([
    ['the stored key has none', null, 'fp-2'],
    ['the request has none', 'fp-1', null],
    ['neither has one', null, null],
  ])('does not answer mismatch when %s', (_name, stored, incoming) => {
    expect(decideExistingKey(existing({ fingerprint: stored }), incoming)).toEqual({
      kind: 'replay',
      response: RESPONSE,
    });
  });
});

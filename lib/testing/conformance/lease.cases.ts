import type { ClaimHandle, ClaimRequest } from '../../store/claim-result.interface';
import type { IdempotencyStore } from '../../store/idempotency-store';
import { type ConformanceContext, replayOf, sampleResponse } from './conformance-context';

/**
 * Leases and fencing: a claim whose lease ended is taken over by a retry of the same request, and
 * from then on nothing the old claim does changes the key. Also the other two ends of a claim
 * (not replayable, released) and what the module's store timeouts rely on.
 */
export function leaseCases<S extends IdempotencyStore>(c: ConformanceContext<S>): void {
  const { expect } = c;
  const short = (key: string, overrides: Partial<ClaimRequest> = {}) =>
    c.request(key, { lockTimeoutMs: c.settings.shortMs, ...overrides });
  /** A claim whose lease ran out, and the retry that took the key over. */
  const takenOver = async (request: ClaimRequest) => {
    const stale = await c.claimed(request);
    await c.outlive(request.lockTimeoutMs);
    const current = await c.claimed(request);
    return { stale, current };
  };

  c.describe('lease', () => {
    c.test('lets a retry of the same request take the key over once the lease ends', async () => {
      const request = short('expired-lease');
      const { stale, current } = await takenOver(request);
      expect(current.token).not.toBe(stale.token);
      expect(await c.claim(request)).toMatchObject({ kind: 'in-flight' });
    });

    c.test('does not let another request take over an ended lease', async () => {
      const request = short('other-request');
      await c.claimed(request);
      await c.outlive(request.lockTimeoutMs);
      expect(await c.claim({ ...request, fingerprint: 'fp-2' })).toEqual({ kind: 'mismatch' });
      // null matches only null for a takeover: fingerprinting off is not the same request.
      expect(await c.claim({ ...request, fingerprint: null })).not.toMatchObject({
        kind: 'claimed',
      });
      await c.claimed(request);
    });

    c.test('lets a claim whose lease ended complete while nobody took the key over', async () => {
      const request = short('late-but-alone');
      const handle = await c.claimed(request);
      await c.outlive(request.lockTimeoutMs);
      const response = sampleResponse('late');
      expect(await c.store().complete(handle, response, c.settings.longMs)).toBe(true);
      expect(await c.claim(request)).toEqual(replayOf(response));
    });
  });

  c.describe('fencing', () => {
    c.test('refuses every write of a claim that was taken over, and changes nothing', async () => {
      const request = short('fenced');
      const { stale, current } = await takenOver(request);
      const store = c.store();
      expect(await store.complete(stale, sampleResponse('stale'), request.ttlMs)).toBe(false);
      expect(await store.markNotReplayable(stale, 500, request.ttlMs)).toBe(false);
      expect(await store.release(stale)).toBe(false);
      expect(await c.claim(request)).toMatchObject({ kind: 'in-flight' });

      const response = sampleResponse('current');
      expect(await store.complete(current, response, request.ttlMs)).toBe(true);
      expect(await store.complete(stale, sampleResponse('stale'), request.ttlMs)).toBe(false);
      expect(await store.release(stale)).toBe(false);
      expect(await c.claim(request)).toEqual(replayOf(response));
    });

    c.test('refuses every write of a claim whose key expired and was claimed anew', async () => {
      const { shortMs, longMs } = c.settings;
      const request = short('replaced', { ttlMs: shortMs });
      const stale = await c.claimed(request);
      // Lease and TTL both ran out: the key is new again, and a new request takes it.
      await c.outlive(2 * shortMs);
      const next = { ...request, fingerprint: 'fp-2', lockTimeoutMs: longMs, ttlMs: longMs };
      const current = await c.claimed(next);
      const store = c.store();
      expect(await store.complete(stale, sampleResponse('stale'), longMs)).toBe(false);
      expect(await store.markNotReplayable(stale, 201, longMs)).toBe(false);
      expect(await store.release(stale)).toBe(false);
      expect(await c.claim(next)).toMatchObject({ kind: 'in-flight' });
      const response = sampleResponse('current');
      expect(await store.complete(current, response, longMs)).toBe(true);
      expect(await c.claim(next)).toEqual(replayOf(response));
    });

    c.test('refuses a token that is not the current claim', async () => {
      const request = c.request('forged');
      const handle = await c.claimed(request);
      const forged: ClaimHandle = { ...handle, token: '00000000-0000-4000-8000-000000000000' };
      const store = c.store();
      expect(await store.complete(forged, sampleResponse('forged'), request.ttlMs)).toBe(false);
      expect(await store.markNotReplayable(forged, null, request.ttlMs)).toBe(false);
      expect(await store.release(forged)).toBe(false);
      expect(await c.claim(request)).toMatchObject({ kind: 'in-flight' });
    });

    c.test('completes a claim once: a second completion changes nothing', async () => {
      const request = c.request('twice');
      const handle = await c.claimed(request);
      const response = sampleResponse('first');
      expect(await c.store().complete(handle, response, request.ttlMs)).toBe(true);
      expect(await c.store().complete(handle, sampleResponse('second'), request.ttlMs)).toBe(false);
      expect(await c.store().markNotReplayable(handle, 500, request.ttlMs)).toBe(false);
      expect(await c.claim(request)).toEqual(replayOf(response));
    });
  });

  c.describe('not replayable', () => {
    c.test('answers not-replayable with the status, to every later claim', async () => {
      const request = c.request('spent');
      const handle = await c.claimed(request);
      expect(await c.store().markNotReplayable(handle, 201, request.ttlMs)).toBe(true);
      expect(await c.claim(request)).toEqual({ kind: 'not-replayable', status: 201 });
      expect(await c.claim({ ...request, fingerprint: null })).toEqual({
        kind: 'not-replayable',
        status: 201,
      });
      expect(await c.claim({ ...request, fingerprint: 'fp-2' })).toEqual({ kind: 'mismatch' });
    });

    c.test('marks a key before its status is known, then again with the status', async () => {
      const request = c.request('marked-early');
      const handle = await c.claimed(request);
      expect(await c.store().markNotReplayable(handle, null, request.ttlMs)).toBe(true);
      expect(await c.claim(request)).toEqual({ kind: 'not-replayable', status: null });
      expect(await c.store().markNotReplayable(handle, 200, request.ttlMs)).toBe(true);
      expect(await c.claim(request)).toEqual({ kind: 'not-replayable', status: 200 });
      // A marked key did not produce a response to store.
      expect(await c.store().complete(handle, sampleResponse('late'), request.ttlMs)).toBe(false);
    });
  });

  c.describe('release', () => {
    c.test('frees the key for the next claim, whatever its fingerprint', async () => {
      const request = c.request('released');
      const handle = await c.claimed(request);
      expect(await c.store().release(handle)).toBe(true);
      expect(await c.store().release(handle)).toBe(false);
      await c.claimed({ ...request, fingerprint: 'fp-2' });
    });

    c.test('does not release a completed key', async () => {
      const request = c.request('kept');
      const handle = await c.claimed(request);
      const response = sampleResponse('kept');
      await c.store().complete(handle, response, request.ttlMs);
      expect(await c.store().release(handle)).toBe(false);
      expect(await c.claim(request)).toEqual(replayOf(response));
    });
  });

  // The module bounds every store call by storeTimeoutMs and answers 503 past it, while the call
  // goes on: what lands afterwards must still be undone by the claim's handle.
  c.describe('after a store timeout', () => {
    c.test('releases a claim that landed after its caller gave up', async () => {
      const request = c.request('late-claim');
      // Its caller answered 503 already; the client's retry finds the key held until the late
      // claim is released by the handle it returns.
      const late = await c.claimed(request);
      expect(await c.claim(request)).toMatchObject({ kind: 'in-flight' });
      expect(await c.store().release(late)).toBe(true);
      await c.claimed(request);
    });

    c.test('releases a key whose marking landed after its caller gave up', async () => {
      const request = c.request('late-mark');
      const handle = await c.claimed(request);
      // The caller releases with the handle as it was before the mark answered; the mark's new
      // expiry may have moved the key (a store that files keys by expiry updates the handle).
      const held = { ...handle };
      expect(await c.store().markNotReplayable(handle, null, request.ttlMs / 2)).toBe(true);
      expect(await c.store().release(held)).toBe(true);
      await c.claimed(request);
    });
  });
}

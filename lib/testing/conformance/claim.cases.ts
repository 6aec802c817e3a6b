import type { IdempotencyStore } from '../../store/idempotency-store';
import { type ConformanceContext, replayOf, sampleResponse } from './conformance-context';

/** Parallel claims of one key in the concurrency case. */
const PARALLEL_CLAIMS = 50;

/**
 * Claims: who gets a key, what everyone else is told (replay, in flight, mismatch), and that
 * scopes and keys do not meet.
 */
export function claimCases<S extends IdempotencyStore>(c: ConformanceContext<S>): void {
  const { expect } = c;

  c.describe('claim', () => {
    c.test('claims a new key, with a handle naming its scope and key', async () => {
      const request = c.request('new');
      const result = await c.claim(request);
      expect(result).toMatchObject({
        kind: 'claimed',
        handle: { scope: request.scope, key: 'new' },
      });
      if (result.kind === 'claimed') {
        expect(typeof result.handle.token).toBe('string');
        expect(result.handle.token.length).toBeGreaterThan(0);
      }
    });

    c.test(`gives a key to exactly one of ${PARALLEL_CLAIMS} parallel claims`, async () => {
      const request = c.request('parallel');
      const results = await Promise.all(
        Array.from({ length: PARALLEL_CLAIMS }, () => c.claim({ ...request })),
      );
      const kinds = results.map((result) => result.kind);
      expect(kinds.filter((kind) => kind === 'claimed')).toHaveLength(1);
      expect(kinds.filter((kind) => kind === 'in-flight')).toHaveLength(PARALLEL_CLAIMS - 1);
    });

    c.test('answers in-flight to a claim of a held key, with the lease left', async () => {
      const { longMs, shortMs } = c.settings;
      const request = c.request('held');
      await c.claimed(request);
      const first = await c.claim(request);
      expect(first).toMatchObject({ kind: 'in-flight' });
      const retryAfterMs = first.kind === 'in-flight' ? first.retryAfterMs : 0;
      expect(retryAfterMs).toBeGreaterThan(longMs / 2);
      expect(retryAfterMs).toBeLessThanOrEqual(longMs);

      await c.outlive(shortMs);
      const later = await c.claim(request);
      expect(later).toMatchObject({ kind: 'in-flight' });
      expect(later.kind === 'in-flight' && later.retryAfterMs).toBeLessThanOrEqual(
        retryAfterMs - shortMs,
      );
    });

    c.test('answers a held key promptly instead of waiting for its holder', async () => {
      const request = c.request('prompt');
      await c.claimed(request);
      const started = Date.now();
      await c.claim(request);
      expect(Date.now() - started).toBeLessThanOrEqual(c.settings.promptMs);
    });

    c.test('gives a new token to every claim of a key', async () => {
      const request = c.request('tokens');
      const first = await c.claimed(request);
      expect(await c.store().release(first)).toBe(true);
      const second = await c.claimed(request);
      expect(second.token).not.toBe(first.token);
    });

    c.test('keeps the same key in two scopes apart', async () => {
      const a = c.request('shared', { scope: `${c.scope()}-a` });
      const b = c.request('shared', { scope: `${c.scope()}-b`, fingerprint: 'fp-2' });
      const handleA = await c.claimed(a);
      await c.claimed(b);
      const response = sampleResponse('a');
      expect(await c.store().complete(handleA, response, a.ttlMs)).toBe(true);
      expect(await c.claim(a)).toEqual(replayOf(response));
      expect(await c.claim(b)).toMatchObject({ kind: 'in-flight' });
      // A token is only good in its own scope.
      expect(await c.store().release({ ...handleA, scope: b.scope })).toBe(false);
      expect(await c.claim(b)).toMatchObject({ kind: 'in-flight' });
    });

    c.test('keeps two keys of one scope apart', async () => {
      const first = await c.claimed(c.request('one'));
      await c.claimed(c.request('two'));
      expect(await c.store().release({ ...first, key: 'two' })).toBe(false);
      expect(await c.claim(c.request('two'))).toMatchObject({ kind: 'in-flight' });
    });
  });

  c.describe('replay', () => {
    c.test('replays the stored status, headers and body bytes', async () => {
      const request = c.request('replayed');
      const handle = await c.claimed(request);
      const response = sampleResponse('replayed');
      expect(await c.store().complete(handle, response, request.ttlMs)).toBe(true);
      expect(await c.claim(request)).toEqual(replayOf(sampleResponse('replayed')));
      expect(await c.claim(request)).toEqual(replayOf(sampleResponse('replayed')));
    });

    c.test('replays an empty body as null, and a stored error status', async () => {
      const request = c.request('empty');
      const handle = await c.claimed(request);
      const response = { status: 422, headers: {}, body: null };
      expect(await c.store().complete(handle, response, request.ttlMs)).toBe(true);
      expect(await c.claim(request)).toEqual(replayOf({ status: 422, headers: {}, body: null }));
    });

    c.test('replays a large body intact', async () => {
      const request = c.request('large');
      const handle = await c.claimed(request);
      const body = Buffer.alloc(512 * 1024);
      for (let i = 0; i < body.length; i++) {
        body[i] = (i * 31 + (i >> 8)) & 0xff;
      }
      const response = { status: 200, headers: {}, body };
      expect(await c.store().complete(handle, response, request.ttlMs)).toBe(true);
      const replay = await c.claim(request);
      expect(replay.kind === 'replay' && replay.response.body?.equals(body)).toBe(true);
    });

    c.test('keeps what it stored from the caller, in and out', async () => {
      const request = c.request('copied');
      const handle = await c.claimed(request);
      const response = sampleResponse('copied');
      expect(await c.store().complete(handle, response, request.ttlMs)).toBe(true);
      response.body?.fill(0);
      response.headers['x-tag'] = 'changed';
      const first = await c.claim(request);
      if (first.kind === 'replay') {
        first.response.body?.fill(0);
        first.response.headers['x-tag'] = 'changed';
      }
      expect(await c.claim(request)).toEqual(replayOf(sampleResponse('copied')));
    });
  });

  c.describe('fingerprints', () => {
    c.test('answers mismatch to another fingerprint, and keeps the stored response', async () => {
      const request = c.request('finished');
      const handle = await c.claimed(request);
      const response = sampleResponse('finished');
      await c.store().complete(handle, response, request.ttlMs);
      expect(await c.claim({ ...request, fingerprint: 'fp-2' })).toEqual({ kind: 'mismatch' });
      expect(await c.claim(request)).toEqual(replayOf(response));
    });

    c.test('answers mismatch rather than in-flight while the key runs', async () => {
      const request = c.request('running');
      await c.claimed(request);
      expect(await c.claim({ ...request, fingerprint: 'fp-2' })).toEqual({ kind: 'mismatch' });
    });

    c.test('matches any fingerprint with null, either side', async () => {
      const stored = c.request('stored-with', { fingerprint: 'fp-1' });
      const handle = await c.claimed(stored);
      await c.store().complete(handle, sampleResponse('with'), stored.ttlMs);
      expect(await c.claim({ ...stored, fingerprint: null })).toEqual(
        replayOf(sampleResponse('with')),
      );

      const bare = c.request('stored-without', { fingerprint: null });
      const bareHandle = await c.claimed(bare);
      expect(await c.claim({ ...bare, fingerprint: 'fp-2' })).toMatchObject({ kind: 'in-flight' });
      await c.store().complete(bareHandle, sampleResponse('without'), bare.ttlMs);
      expect(await c.claim({ ...bare, fingerprint: 'fp-2' })).toEqual(
        replayOf(sampleResponse('without')),
      );
    });
  });
}

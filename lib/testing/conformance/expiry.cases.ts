import type { IdempotencyStore } from '../../store/idempotency-store';
import { type ConformanceContext, replayOf, sampleResponse } from './conformance-context';

/**
 * Expiry, purge and maintenance: a key past its TTL is new again whether or not the purge has
 * run, the purge removes expired keys only, and the store's upkeep changes no key.
 */
export function expiryCases<S extends IdempotencyStore>(c: ConformanceContext<S>): void {
  const { expect } = c;
  const { shortMs, longMs } = c.settings;

  c.describe('expiry', () => {
    c.test('treats a finished key past its TTL as new, purged or not', async () => {
      const request = c.request('finished');
      const handle = await c.claimed(request);
      await c.store().complete(handle, sampleResponse('finished'), shortMs);
      await c.outlive(shortMs);
      await c.claimed({ ...request, fingerprint: 'fp-2' });
    });

    c.test('counts the TTL of a finished key from its completion', async () => {
      const extended = c.request('extended', { lockTimeoutMs: shortMs, ttlMs: shortMs });
      const extendedHandle = await c.claimed(extended);
      const kept = sampleResponse('extended');
      await c.store().complete(extendedHandle, kept, longMs);
      const shortened = c.request('shortened');
      const shortenedHandle = await c.claimed(shortened);
      await c.store().complete(shortenedHandle, sampleResponse('shortened'), shortMs);

      await c.outlive(2 * shortMs);
      expect(await c.claim(extended)).toEqual(replayOf(kept));
      await c.claimed(shortened);
    });

    c.test('treats an abandoned claim as new once its lease and TTL have passed', async () => {
      const request = c.request('abandoned', { lockTimeoutMs: shortMs, ttlMs: shortMs });
      await c.claimed(request);
      await c.outlive(2 * shortMs);
      await c.claimed({ ...request, fingerprint: 'fp-2' });
    });

    c.test('treats a not-replayable key past its TTL as new', async () => {
      const request = c.request('spent');
      const handle = await c.claimed(request);
      await c.store().markNotReplayable(handle, 200, shortMs);
      await c.outlive(shortMs);
      await c.claimed({ ...request, fingerprint: 'fp-2' });
    });

    c.test('fences an expired claim off the key that a new claim took', async () => {
      const request = c.request('reused', { lockTimeoutMs: shortMs, ttlMs: shortMs });
      const stale = await c.claimed(request);
      await c.outlive(2 * shortMs);
      const other = { ...request, fingerprint: 'fp-2', lockTimeoutMs: longMs, ttlMs: longMs };
      const current = await c.claimed(other);
      const store = c.store();
      expect(await store.complete(stale, sampleResponse('stale'), longMs)).toBe(false);
      expect(await store.markNotReplayable(stale, null, longMs)).toBe(false);
      expect(await store.release(stale)).toBe(false);
      const response = sampleResponse('current');
      expect(await store.complete(current, response, longMs)).toBe(true);
      expect(await c.claim(other)).toEqual(replayOf(response));
      // The key is the new request's now: the old one is the mismatch.
      expect(await c.claim(request)).toEqual({ kind: 'mismatch' });
    });
  });

  /** Three live keys (finished, running, not replayable); returns the check that they still are. */
  const liveKeys = async () => {
    const store = c.store();
    const finished = c.request('live-finished');
    await store.complete(await c.claimed(finished), sampleResponse('live'), longMs);
    const running = c.request('live-running');
    await c.claimed(running);
    const spent = c.request('live-spent');
    await store.markNotReplayable(await c.claimed(spent), 500, longMs);
    return async () => {
      expect(await c.claim(finished)).toEqual(replayOf(sampleResponse('live')));
      expect(await c.claim(running)).toMatchObject({ kind: 'in-flight' });
      expect(await c.claim(spent)).toEqual({ kind: 'not-replayable', status: 500 });
    };
  };
  const expectRecords = async (expected: number) => {
    if (c.options.countRecords) {
      expect(await c.options.countRecords(c.store())).toBe(expected);
    }
  };

  c.describe('purge', () => {
    /** Five keys that expire within two short periods: four finished, one abandoned. */
    const expiringKeys = async () => {
      for (const key of ['a', 'b', 'c', 'd']) {
        const handle = await c.claimed(c.request(`expiring-${key}`));
        await c.store().complete(handle, sampleResponse(key), shortMs);
      }
      await c.claimed(c.request('abandoned', { lockTimeoutMs: shortMs, ttlMs: shortMs }));
    };
    if (c.settings.purge === 'batched') {
      c.test('deletes expired keys only, at most a batch at a time, and counts them', async () => {
        await expiringKeys();
        const liveKeysAnswer = await liveKeys();
        await c.outlive(2 * shortMs);
        const store = c.store();
        await expectRecords(8);
        expect(await store.purgeExpired(2)).toBe(2);
        expect(await store.purgeExpired(2)).toBe(2);
        expect(await store.purgeExpired(2)).toBe(1);
        expect(await store.purgeExpired(2)).toBe(0);
        await expectRecords(3);
        await liveKeysAnswer();
      });
    } else if (c.settings.purge === 'bulk') {
      c.test('deletes expired keys only', async () => {
        await expiringKeys();
        const liveKeysAnswer = await liveKeys();
        await c.outlive(2 * shortMs + c.settings.purgeLagMs);
        await expectRecords(8);
        expect(await c.store().purgeExpired(1000)).toBeGreaterThanOrEqual(0);
        await expectRecords(3);
        await liveKeysAnswer();
      });
    } else {
      c.test('lets expired keys go by themselves, and its purge deletes nothing', async () => {
        await expiringKeys();
        const liveKeysAnswer = await liveKeys();
        await c.outlive(2 * shortMs + c.settings.purgeLagMs);
        await expectRecords(3);
        expect(await c.store().purgeExpired(1000)).toBe(0);
        await expectRecords(3);
        await liveKeysAnswer();
      });
    }

    c.test('deletes nothing while no key has expired', async () => {
      const liveKeysAnswer = await liveKeys();
      const purged = await c.store().purgeExpired(1000);
      if (c.settings.purge !== 'bulk') {
        expect(purged).toBe(0);
      }
      await expectRecords(3);
      await liveKeysAnswer();
    });
  });

  c.describe('maintenance', () => {
    c.test('declares a whole interval of 0 or more, and leaves every key as it was', async () => {
      const store: Partial<IdempotencyStore> = c.store();
      const interval = store.maintenanceIntervalMs?.() ?? 0;
      expect(Number.isInteger(interval) && interval >= 0).toBe(true);
      const liveKeysAnswer = await liveKeys();
      await store.maintain?.();
      await store.maintain?.();
      await expectRecords(3);
      await liveKeysAnswer();
    });
  });
}

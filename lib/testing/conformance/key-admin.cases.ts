import { createHash } from 'node:crypto';
import type { IdempotencyStore } from '../../store/idempotency-store';
import { type IdempotencyKeyAdmin, hasKeyAdmin } from '../../store/key-admin.interface';
import {
  type ConformanceContext,
  declarationCase,
  replayOf,
  sampleResponse,
} from './conformance-context';

/** Declares that the store offers key administration exactly when the options say so. */
export function keyAdminDeclarationCase<S extends IdempotencyStore>(
  c: ConformanceContext<S>,
): void {
  declarationCase(
    c,
    'keyAdmin',
    c.options.keyAdmin !== undefined,
    ['offers key administration', 'does not offer key administration'],
    hasKeyAdmin,
  );
}

/**
 * Key administration: a key is found, released or deleted in its own scope only; release frees an
 * in-flight key only, and fences its claim off; listing finds a scope's keys in flight long enough,
 * the oldest first.
 */
export function keyAdminCases<S extends IdempotencyStore>(c: ConformanceContext<S>): void {
  const { expect } = c;
  const admin = () => c.store() as unknown as IdempotencyKeyAdmin;
  const other = () => `${c.scope()}-other`;
  const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
  /** `later` comes `ms` after `earlier`, within a second (the stores' clocks tick in ms). */
  const apart = (earlier: Date | null, later: Date | null, ms: number) => {
    expect(earlier instanceof Date && later instanceof Date).toBe(true);
    expect(
      Math.abs((later as Date).getTime() - (earlier as Date).getTime() - ms),
    ).toBeLessThanOrEqual(1000);
  };

  c.describe('key administration', () => {
    c.test('finds a key in flight with its lease, expiry and fingerprint hash', async () => {
      const request = c.request('admin-in-flight');
      await c.claimed(request);
      const found = await admin().findKey(c.scope(), 'admin-in-flight', false);
      expect(found).toMatchObject({
        scope: c.scope(),
        key: 'admin-in-flight',
        state: 'in_flight',
        finishedAt: null,
        status: null,
        fingerprintHash: sha256('fp-1'),
      });
      // An in-flight key expires a TTL after its lease ends; the lease ends a lease after its claim.
      apart(found?.leaseEndsAt ?? null, found?.expiresAt ?? null, request.ttlMs);
      if (found?.claimedAt !== null) {
        apart(found?.claimedAt ?? null, found?.leaseEndsAt ?? null, request.lockTimeoutMs);
      }
      expect(found !== null && 'response' in found).toBe(false);
    });

    c.test('finds a completed key, with its response only when asked', async () => {
      const request = c.request('admin-completed', { fingerprint: null });
      const response = sampleResponse('admin', 202);
      await c.store().complete(await c.claimed(request), response, c.settings.longMs);
      const bare = await admin().findKey(c.scope(), 'admin-completed', false);
      expect(bare).toMatchObject({ state: 'completed', status: 202, leaseEndsAt: null });
      expect(bare?.fingerprintHash).toBe(null);
      expect(bare !== null && 'response' in bare).toBe(false);
      const whole = await admin().findKey(c.scope(), 'admin-completed', true);
      expect(whole?.response).toEqual(response);
    });

    c.test('finds nothing for another scope, an unknown key or an expired one', async () => {
      await c.claimed(c.request('admin-scoped'));
      const short = c.request('admin-expired', { lockTimeoutMs: 1, ttlMs: c.settings.shortMs });
      await c.store().markNotReplayable(await c.claimed(short), 500, c.settings.shortMs);
      expect(await admin().findKey(other(), 'admin-scoped', true)).toBe(null);
      expect(await admin().findKey(c.scope(), 'admin-unknown', true)).toBe(null);
      expect(await admin().findKey(c.scope(), 'admin-expired', false)).toMatchObject({
        state: 'not_replayable',
        status: 500,
      });
      await c.outlive(c.settings.shortMs);
      expect(await admin().findKey(c.scope(), 'admin-expired', false)).toBe(null);
    });

    c.test(
      'releases a key in flight: the next request runs, the old claim is fenced off',
      async () => {
        const request = c.request('admin-release');
        const stale = await c.claimed(request);
        const elsewhere = await c.claimed({ ...request, scope: other() });
        // The same key in another scope is another key: releasing it leaves this one held.
        expect(await admin().releaseKey(other(), 'admin-release')).toBe(true);
        expect(
          await c.store().complete(elsewhere, sampleResponse('elsewhere'), c.settings.longMs),
        ).toBe(false);
        expect(await c.claim(request)).toMatchObject({ kind: 'in-flight' });
        expect(await admin().releaseKey(c.scope(), 'admin-release')).toBe(true);
        expect(await admin().findKey(c.scope(), 'admin-release', false)).toBe(null);
        const current = await c.claimed(request);
        expect(await c.store().complete(stale, sampleResponse('stale'), c.settings.longMs)).toBe(
          false,
        );
        const response = sampleResponse('current');
        expect(await c.store().complete(current, response, c.settings.longMs)).toBe(true);
        expect(await c.claim(request)).toEqual(replayOf(response));
      },
    );

    c.test('releases the claim it names, and not a retry that took the key over', async () => {
      const request = c.request('admin-claim-id', { lockTimeoutMs: c.settings.shortMs });
      await c.claimed(request);
      const first = await admin().findKey(c.scope(), 'admin-claim-id', false);
      await c.outlive(request.lockTimeoutMs);
      const current = await c.claimed(request);
      const second = await admin().findKey(c.scope(), 'admin-claim-id', false);
      expect(typeof first?.claimId === 'string' && /^[0-9a-f]{64}$/.test(first.claimId)).toBe(true);
      expect(second?.claimId === first?.claimId).toBe(false);
      expect(await admin().releaseKey(c.scope(), 'admin-claim-id', first?.claimId)).toBe(false);
      const response = sampleResponse('kept');
      expect(await c.store().complete(current, response, c.settings.longMs)).toBe(true);
      // A finished key keeps its claimId, and is never released.
      const finished = await admin().findKey(c.scope(), 'admin-claim-id', false);
      expect(finished?.claimId).toBe(second?.claimId);
      expect(await admin().releaseKey(c.scope(), 'admin-claim-id', second?.claimId)).toBe(false);
      expect(await c.claim(request)).toEqual(replayOf(response));
    });

    c.test('releases with the current claimId', async () => {
      const request = c.request('admin-current-id');
      await c.claimed(request);
      const found = await admin().findKey(c.scope(), 'admin-current-id', false);
      expect(await admin().releaseKey(c.scope(), 'admin-current-id', found?.claimId)).toBe(true);
      await c.claimed(request);
    });

    c.test('does not release a finished key', async () => {
      const request = c.request('admin-finished');
      const response = sampleResponse('kept');
      await c.store().complete(await c.claimed(request), response, c.settings.longMs);
      expect(await admin().releaseKey(c.scope(), 'admin-finished')).toBe(false);
      expect(await admin().releaseKey(c.scope(), 'admin-unknown')).toBe(false);
      expect(await c.claim(request)).toEqual(replayOf(response));
    });

    c.test('deletes a key in any state, in its own scope only', async () => {
      const request = c.request('admin-delete');
      await c.store().complete(await c.claimed(request), sampleResponse('gone'), c.settings.longMs);
      expect(await admin().deleteKey(other(), 'admin-delete')).toBe(false);
      const elsewhere = { ...request, scope: other() };
      await c
        .store()
        .complete(await c.claimed(elsewhere), sampleResponse('kept'), c.settings.longMs);
      expect(await admin().deleteKey(other(), 'admin-delete')).toBe(true);
      expect(await c.claim(request)).toMatchObject({ kind: 'replay' });
      expect(await admin().deleteKey(c.scope(), 'admin-delete')).toBe(true);
      expect(await admin().deleteKey(c.scope(), 'admin-delete')).toBe(false);
      await c.claimed(request);
    });

    if (c.options.keyAdmin === 'listing') {
      c.test('lists the keys of a scope in flight long enough, the oldest first', async () => {
        await c.claimed(c.request('admin-old-1'));
        await c.claimed(c.request('admin-old-2'));
        await c
          .store()
          .complete(
            await c.claimed(c.request('admin-done')),
            sampleResponse('done'),
            c.settings.longMs,
          );
        await c.claimed({ ...c.request('admin-elsewhere'), scope: other() });
        await c.outlive(c.settings.shortMs);
        await c.claimed(c.request('admin-young'));
        const old = await admin().listInFlight(c.scope(), {
          olderThanMs: c.settings.shortMs,
          limit: 10,
        });
        expect(old.map((found) => found.key)).toEqual(['admin-old-1', 'admin-old-2']);
        const all = await admin().listInFlight(c.scope(), { olderThanMs: 0, limit: 10 });
        expect(all.map((found) => found.key)).toEqual([
          'admin-old-1',
          'admin-old-2',
          'admin-young',
        ]);
        const first = await admin().listInFlight(c.scope(), { olderThanMs: 0, limit: 1 });
        expect(first.map((found) => found.key)).toEqual(['admin-old-1']);
        expect(first[0]).toMatchObject({ scope: c.scope(), state: 'in_flight' });
      });
    } else {
      c.test('refuses to list keys, saying so', async () => {
        await c.claimed(c.request('admin-unlisted'));
        let refused: unknown;
        try {
          await admin().listInFlight(c.scope(), { olderThanMs: 0, limit: 10 });
        } catch (error) {
          refused = error;
        }
        expect(refused instanceof Error && /cannot list keys/.test(refused.message)).toBe(true);
      });
    }
  });
}

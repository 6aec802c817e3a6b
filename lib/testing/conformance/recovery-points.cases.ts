import type { ClaimResult } from '../../store/claim-result.interface';
import type { IdempotencyStore } from '../../store/idempotency-store';
import {
  type IdempotencyRecoveryPoints,
  keepsRecoveryPoints,
} from '../../store/recovery-points.interface';
import { type ConformanceContext, declarationCase, sampleResponse } from './conformance-context';

/**
 * Declares that the store keeps recovery points exactly when the options say so. A store that
 * keeps them only once enabled (`enableRecoveryPoints`) may be declared without them: the suite
 * then checks its statements as a module without `steps` options uses them.
 */
export function recoveryPointsDeclarationCase<S extends IdempotencyStore>(
  c: ConformanceContext<S>,
): void {
  declarationCase(
    c,
    'recoveryPoints',
    c.options.recoveryPoints === true,
    ['keeps recovery points', 'does not keep recovery points'],
    (store) =>
      keepsRecoveryPoints(store) &&
      (c.options.recoveryPoints === true || store.enableRecoveryPoints === undefined),
  );
}

/**
 * Recovery points: the steps a claim finished go to the claim that takes the key over (after its
 * lease ended, or after a release), in order; a release keeps a key with steps for the same request
 * only; step writes are fenced and in sequence; an expired key starts without steps.
 */
export function recoveryPointsCases<S extends IdempotencyStore>(c: ConformanceContext<S>): void {
  const { expect } = c;
  const points = () => c.store() as unknown as IdempotencyRecoveryPoints;
  const step = (name: string) => ({ name, result: JSON.stringify({ value: `${name}-result` }) });
  const stepsOf = (result: ClaimResult) => (result.kind === 'claimed' ? result.steps : undefined);

  c.describe('recovery points', () => {
    c.test('a new claim holds no steps', async () => {
      const result = await c.claim(c.request('steps-new'));
      expect(result.kind).toBe('claimed');
      expect(stepsOf(result) ?? []).toEqual([]);
    });

    c.test('a release keeps the steps for the same request, which resumes after them', async () => {
      const request = c.request('steps-released');
      const handle = await c.claimed(request);
      expect(await points().saveStep(handle, 0, step('reserve'), c.settings.longMs)).toBe(true);
      expect(await points().saveStep(handle, 1, step('charge'), c.settings.longMs)).toBe(true);
      expect(await c.store().release(handle)).toBe(true);
      // Another request with the key is told so: the steps ran for the first one.
      expect(await c.claim({ ...request, fingerprint: 'fp-2' })).toEqual({ kind: 'mismatch' });
      const resumed = await c.claim(request);
      expect(resumed.kind).toBe('claimed');
      expect(stepsOf(resumed)).toEqual([step('reserve'), step('charge')]);
      // The resumed claim adds the next one, and a completion finishes the key as usual.
      const next = (resumed as { handle: typeof handle }).handle;
      expect(await points().saveStep(next, 2, step('ship'), c.settings.longMs)).toBe(true);
      expect(await c.store().complete(next, sampleResponse('steps', 201), c.settings.longMs)).toBe(
        true,
      );
      expect((await c.claim(request)).kind).toBe('replay');
    });

    c.test('a release of a claim without steps frees the key, as always', async () => {
      const request = c.request('steps-none-released');
      expect(await c.store().release(await c.claimed(request))).toBe(true);
      const again = await c.claim({ ...request, fingerprint: 'fp-2' });
      expect(again.kind).toBe('claimed');
      expect(stepsOf(again) ?? []).toEqual([]);
    });

    c.test(
      'a claim taken over after its lease ended hands its steps on, and is fenced off',
      async () => {
        const request = c.request('steps-takeover', { lockTimeoutMs: c.settings.shortMs });
        const first = await c.claimed(request);
        expect(await points().saveStep(first, 0, step('charge'), c.settings.shortMs)).toBe(true);
        await c.outlive(c.settings.shortMs);
        const takeover = await c.claim(request);
        expect(stepsOf(takeover)).toEqual([step('charge')]);
        expect(await points().saveStep(first, 1, step('late'), c.settings.longMs)).toBe(false);
        const second = (takeover as { handle: typeof first }).handle;
        expect(await points().saveStep(second, 1, step('ship'), c.settings.longMs)).toBe(true);
      },
    );

    c.test('a saved step renews the lease, on the store’s clock', async () => {
      const request = c.request('steps-renewed', { lockTimeoutMs: c.settings.shortMs });
      const handle = await c.claimed(request);
      expect(await points().saveStep(handle, 0, step('reserve'), c.settings.longMs)).toBe(true);
      await c.outlive(c.settings.shortMs);
      // Still the first claim's: a duplicate finds it in flight, with the renewed lease left.
      const duplicate = await c.claim(request);
      expect(duplicate.kind).toBe('in-flight');
      expect((duplicate as { retryAfterMs: number }).retryAfterMs).toBeGreaterThan(
        c.settings.shortMs,
      );
      expect(await points().saveStep(handle, 1, step('charge'), c.settings.longMs)).toBe(true);
    });

    c.test(
      'a released claim is fenced off: a step of it that lands late is not saved',
      async () => {
        const request = c.request('steps-released-late');
        const handle = await c.claimed(request);
        expect(await points().saveStep(handle, 0, step('reserve'), c.settings.longMs)).toBe(true);
        expect(await c.store().release(handle)).toBe(true);
        expect(await points().saveStep(handle, 1, step('late'), c.settings.longMs)).toBe(false);
        // Still free for the same request, with the one step recorded before the release.
        expect(stepsOf(await c.claim(request))).toEqual([step('reserve')]);
      },
    );

    c.test('a renewed lease keeps the key from expiring under it', async () => {
      const { shortMs } = c.settings;
      const request = c.request('steps-renewed-expiry', { lockTimeoutMs: shortMs, ttlMs: shortMs });
      const handle = await c.claimed(request);
      // A renewal well past the waits below: a store whose keys expire by themselves (Redis) would
      // otherwise lose the key to a slow machine, not to a short renewal.
      expect(await points().saveStep(handle, 0, step('reserve'), 6 * shortMs)).toBe(true);
      await c.outlive(2 * shortMs);
      // Past the claim's lease and TTL, within the renewed lease: still the first claim's key.
      expect((await c.claim({ ...request, fingerprint: 'fp-2' })).kind).not.toBe('claimed');
      expect(await points().saveStep(handle, 1, step('charge'), shortMs)).toBe(true);
    });

    c.test('a finished, spent or freed claim saves no step', async () => {
      const completed = await c.claimed(c.request('steps-after-complete'));
      await c.store().complete(completed, sampleResponse('steps', 201), c.settings.longMs);
      expect(await points().saveStep(completed, 0, step('late'), c.settings.longMs)).toBe(false);
      const spent = await c.claimed(c.request('steps-after-mark'));
      await c.store().markNotReplayable(spent, 500, c.settings.longMs);
      expect(await points().saveStep(spent, 0, step('late'), c.settings.longMs)).toBe(false);
      const freed = await c.claimed(c.request('steps-after-release'));
      await c.store().release(freed);
      expect(await points().saveStep(freed, 0, step('late'), c.settings.longMs)).toBe(false);
    });

    c.test('a step is saved only as the next one of its claim', async () => {
      const handle = await c.claimed(c.request('steps-sequence'));
      expect(await points().saveStep(handle, 1, step('skipped-ahead'), c.settings.longMs)).toBe(
        false,
      );
      expect(await points().saveStep(handle, 0, step('first'), c.settings.longMs)).toBe(true);
      expect(await points().saveStep(handle, 0, step('first-again'), c.settings.longMs)).toBe(
        false,
      );
      await c.store().release(handle);
      expect(stepsOf(await c.claim(c.request('steps-sequence')))).toEqual([step('first')]);
    });

    c.test('an expired key starts anew, without the steps of its last claim', async () => {
      const request = c.request('steps-expired', { lockTimeoutMs: 1, ttlMs: c.settings.shortMs });
      const handle = await c.claimed(request);
      expect(await points().saveStep(handle, 0, step('charge'), 1)).toBe(true);
      await c.store().release(handle);
      await c.outlive(c.settings.shortMs + 1);
      const fresh = await c.claim({ ...request, fingerprint: 'fp-2' });
      expect(fresh.kind).toBe('claimed');
      expect(stepsOf(fresh) ?? []).toEqual([]);
    });
  });
}

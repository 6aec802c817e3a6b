import type { ClaimHandle, ClaimRequest } from '../../../lib';
import { InMemoryIdempotencyStore, describeIdempotencyStore } from '../../../lib/testing';

const count = (store: InMemoryIdempotencyStore) => Promise.resolve(store.size);

describeIdempotencyStore(
  'InMemoryIdempotencyStore (real time)',
  () => new InMemoryIdempotencyStore(),
  {
    countRecords: count,
    keyAdmin: 'listing',
    recoveryPoints: true,
  },
);

let now = 0;
describeIdempotencyStore(
  'InMemoryIdempotencyStore (its own clock)',
  () => {
    now = Date.UTC(2030, 0, 1);
    return new InMemoryIdempotencyStore({ now: () => now });
  },
  {
    countRecords: count,
    keyAdmin: 'listing',
    recoveryPoints: true,
    advanceTime: (ms) => {
      now += ms;
    },
  },
);

describe('InMemoryIdempotencyStore', () => {
  let clock: number;
  let store: InMemoryIdempotencyStore;
  const request = (overrides: Partial<ClaimRequest> = {}): ClaimRequest => ({
    scope: 'user-1',
    key: 'k',
    fingerprint: 'fp',
    lockTimeoutMs: 1000,
    ttlMs: 5000,
    ...overrides,
  });
  const claimed = async (claim: ClaimRequest): Promise<ClaimHandle> => {
    const result = await store.claim(claim);
    if (result.kind !== 'claimed') {
      throw new Error(`expected a claim, got ${result.kind}`);
    }
    return result.handle;
  };

  beforeEach(() => {
    clock = 1_000_000;
    store = new InMemoryIdempotencyStore({ now: () => clock });
  });

  it('ends a lease at the claim plus lockTimeoutMs, to the millisecond', async () => {
    await claimed(request());
    clock += 999;
    expect(await store.claim(request())).toEqual({ kind: 'in-flight', retryAfterMs: 1 });
    clock += 1;
    await claimed(request());
  });

  it('keeps an abandoned claim lockTimeoutMs + ttlMs, then treats it as new', async () => {
    await claimed(request());
    clock += 5999;
    expect(await store.claim(request({ fingerprint: 'other' }))).toEqual({ kind: 'mismatch' });
    clock += 1;
    await claimed(request({ fingerprint: 'other' }));
  });

  it('keeps a finished key ttlMs from its completion', async () => {
    const handle = await claimed(request());
    clock += 500;
    await store.complete(handle, { status: 200, headers: {}, body: null }, 2000);
    clock += 1999;
    expect(await store.claim(request())).toMatchObject({ kind: 'replay' });
    clock += 1;
    await claimed(request());
  });

  it('answers in-flight, as the PostgreSQL store, to a null fingerprint after a lease ended', async () => {
    await claimed(request());
    clock += 1000;
    expect(await store.claim(request({ fingerprint: null }))).toEqual({
      kind: 'in-flight',
      retryAfterMs: 1000,
    });
  });

  it('purges the keys that expired first first, and counts what it holds', async () => {
    for (const [key, ttlMs] of [
      ['late', 300],
      ['early', 100],
      ['live', 10_000],
    ] as const) {
      const handle = await claimed(request({ key, lockTimeoutMs: 0, ttlMs }));
      await store.complete(handle, { status: 200, headers: {}, body: null }, ttlMs);
    }
    expect(store.size).toBe(3);
    clock += 200;
    expect(await store.purgeExpired(10)).toBe(1);
    clock += 100;
    expect(await store.purgeExpired(10)).toBe(1);
    expect(store.size).toBe(1);
    expect(await store.claim(request({ key: 'live' }))).toMatchObject({ kind: 'replay' });
  });

  it('forgets every key on clear()', async () => {
    await claimed(request({ scope: 'a' }));
    await claimed(request({ scope: 'b' }));
    store.clear();
    expect(store.size).toBe(0);
    await claimed(request({ scope: 'a' }));
  });

  it('measures time with Date.now without a clock', async () => {
    const real = new InMemoryIdempotencyStore();
    await real.claim(request());
    const result = await real.claim(request());
    expect(result.kind === 'in-flight' && result.retryAfterMs).toBeGreaterThan(900);
  });
});

describe('describeIdempotencyStore', () => {
  it('names the Jest globals it misses', () => {
    const globals = globalThis as { beforeEach?: unknown; afterEach?: unknown };
    const saved = { beforeEach: globals.beforeEach, afterEach: globals.afterEach };
    globals.beforeEach = undefined;
    globals.afterEach = undefined;
    try {
      expect(() => describeIdempotencyStore('x', () => new InMemoryIdempotencyStore())).toThrow(
        /beforeEach, afterEach are missing/,
      );
    } finally {
      Object.assign(globals, saved);
    }
  });

  it('refuses a long duration that a short one could outlast', () => {
    expect(() =>
      describeIdempotencyStore('x', () => new InMemoryIdempotencyStore(), {
        shortMs: 1000,
        longMs: 5000,
      }),
    ).toThrow(/longMs \(5000\) must be at least 20 times shortMs \(1000\)/);
  });
});

import { randomUUID } from 'node:crypto';
import type { ClaimHandle, ClaimRequest, ClaimResult } from '../../store/claim-result.interface';
import type { IdempotencyStore } from '../../store/idempotency-store';
import { keepsRecoveryPoints } from '../../store/recovery-points.interface';
import type { StoredResponse } from '../../store/stored-response.interface';
import type { JestGlobals, Matchers, TestBody } from '../jest-globals';
import type { IdempotencyStoreConformanceOptions, PurgeMode } from '../store-conformance.options';

/** The suite's options with their defaults applied. */
export interface ConformanceSettings {
  /** Lease and TTL that run out during a test (ms). */
  shortMs: number;
  /** Lease and TTL that outlast a test (ms). */
  longMs: number;
  /** Added to every wait for a lease or TTL to end (ms). */
  marginMs: number;
  /** Longest answer to a claim of a held key (ms). */
  promptMs: number;
  purge: PurgeMode;
  /** How long an expired key may outlive a bulk purge, or its expiry (`'expiring'`), in ms. */
  purgeLagMs: number;
  testTimeoutMs: number;
}

/** What every case of the suite works with: the current test's store, requests, time. */
export interface ConformanceContext<S extends IdempotencyStore = IdempotencyStore> {
  readonly settings: ConformanceSettings;
  readonly options: IdempotencyStoreConformanceOptions<S>;
  /** The store of the running test. */
  store(): S;
  /** The running test's own scope (`request` uses it). */
  scope(): string;
  /** A test, with the suite's timeout. */
  test(name: string, body: TestBody): void;
  describe(name: string, body: () => void): void;
  expect(actual: unknown): Matchers;
  /**
   * A claim request in the running test's own scope. Default: fingerprint `'fp-1'`, a long lease
   * and a long TTL.
   */
  request(key: string, overrides?: Partial<ClaimRequest>): ClaimRequest;
  /** Claims `request`, failing the test unless it is claimed; returns the handle. */
  claimed(request: ClaimRequest): Promise<ClaimHandle>;
  /** Claims `request` and returns the result, whatever it is. */
  claim(request: ClaimRequest): Promise<ClaimResult>;
  /** Lets `ms` pass on the store's clock, plus the margin: a lease or TTL of `ms` has then ended. */
  outlive(ms: number): Promise<void>;
}

/** Resolves the suite's options (defaults in this one place). */
export function conformanceSettings(
  options: IdempotencyStoreConformanceOptions<never>,
): ConformanceSettings {
  const settings: ConformanceSettings = {
    shortMs: options.shortMs ?? 300,
    longMs: options.longMs ?? 60_000,
    marginMs: options.marginMs ?? (options.advanceTime ? 1 : 50),
    promptMs: options.promptMs ?? 1000,
    purge: options.purge ?? 'batched',
    purgeLagMs: options.purgeLagMs ?? 0,
    testTimeoutMs: options.testTimeoutMs ?? 30_000,
  };
  if (settings.shortMs * 20 > settings.longMs) {
    throw new Error(
      `nestjs-idempotency/testing: longMs (${settings.longMs}) must be at least 20 times shortMs (${settings.shortMs}), so that what must stay held outlasts every wait of a test.`,
    );
  }
  return settings;
}

/**
 * Builds the context of one `describeIdempotencyStore` block: a fresh store and scope before each
 * test, its teardown after.
 */
export function conformanceContext<S extends IdempotencyStore>(
  jest: JestGlobals,
  factory: () => S | Promise<S>,
  options: IdempotencyStoreConformanceOptions<S>,
  settings: ConformanceSettings,
): ConformanceContext<S> {
  let current: { store: S; scope: string } | undefined;

  jest.beforeEach(async () => {
    const store = await factory();
    current = { store, scope: `conformance-${randomUUID()}` };
    if (options.recoveryPoints === true && keepsRecoveryPoints(store)) {
      // As the module does when it records steps.
      store.enableRecoveryPoints?.();
    }
    await store.prepare();
  }, settings.testTimeoutMs);
  jest.afterEach(async () => {
    const ended = current;
    current = undefined;
    if (ended) {
      await options.teardown?.(ended.store);
    }
  }, settings.testTimeoutMs);

  const running = () => {
    if (!current) {
      throw new Error('nestjs-idempotency/testing: no store: the factory did not run or failed.');
    }
    return current;
  };
  const claim = (request: ClaimRequest) => running().store.claim(request);

  return {
    settings,
    options,
    store: () => running().store,
    scope: () => running().scope,
    test: (name, body) => jest.it(name, body, settings.testTimeoutMs),
    describe: (name, body) => jest.describe(name, body),
    expect: (actual) => jest.expect(actual),
    request: (key, overrides) => ({
      scope: running().scope,
      key,
      fingerprint: 'fp-1',
      lockTimeoutMs: settings.longMs,
      ttlMs: settings.longMs,
      ...overrides,
    }),
    claim,
    claimed: async (request) => {
      const result = await claim(request);
      jest.expect(result).toMatchObject({ kind: 'claimed' });
      return (result as Extract<ClaimResult, { kind: 'claimed' }>).handle;
    },
    outlive: async (ms) => {
      const total = ms + settings.marginMs;
      if (options.advanceTime) {
        await options.advanceTime(total);
      } else {
        await new Promise((resolve) => setTimeout(resolve, total));
      }
    },
  };
}

/**
 * A response as a handler might produce it, distinct per `tag`: a status, several headers and a
 * body of bytes that are not valid UTF-8 (a store must keep bytes, not text).
 */
export function sampleResponse(tag: string, status = 201): StoredResponse {
  return {
    status,
    headers: {
      'content-type': 'application/json; charset=utf-8',
      location: `/orders/${tag}`,
      'x-tag': tag,
    },
    body: Buffer.concat([
      Buffer.from(JSON.stringify({ tag, note: 'é€😀' })),
      Buffer.from([0x00, 0xff, 0xfe, 0x80, 0x0a]),
    ]),
  };
}

/** The result a replay of `response` must be: the same status, headers and bytes. */
export function replayOf(response: StoredResponse): ClaimResult {
  return { kind: 'replay', response };
}

/**
 * A test that the store has a capability exactly when the suite's `option` declares it, so that
 * the capability's cases run on every store that has it.
 *
 * @param described - what the test says of the store, with the capability and without it
 */
export function declarationCase<S extends IdempotencyStore>(
  c: ConformanceContext<S>,
  option: string,
  declared: boolean,
  described: [has: string, hasNot: string],
  has: (store: S) => boolean,
): void {
  c.test(`${declared ? described[0] : described[1]}, as declared (option ${option})`, () => {
    c.expect(has(c.store())).toBe(declared);
  });
}

import {
  IDEMPOTENCY_DEFAULTS,
  resolveModuleSettings,
  resolveRouteSettings,
} from '../../lib/idempotency-options.defaults';
import type {
  IdempotencyModuleOptions,
  IdempotencyRequestInfo,
} from '../../lib/interfaces/idempotency-options.interface';
import { ScopeUnresolvedError } from '../../lib/protocol/default-scope';
import { isStoredStatusByDefault } from '../../lib/protocol/response-policy';

function withRaw(raw: unknown): IdempotencyRequestInfo {
  return { method: 'POST', url: '/orders', body: undefined, raw };
}

/** Freezes every nested object, so that any write to the caller's options throws. */
function deepFreeze<T extends object>(value: T): T {
  for (const child of Object.values(value)) {
    if (typeof child === 'object' && child !== null) {
      deepFreeze(child);
    }
  }
  return Object.freeze(value);
}

describe('resolveModuleSettings', () => {
  it('applies the defaults', () => {
    expect(resolveModuleSettings({})).toEqual({
      headerName: 'idempotency-key',
      headerDisplayName: 'Idempotency-Key',
      autoMethods: new Set(),
      storeTimeoutMs: 5_000,
      purgeIntervalMs: 60_000,
      purgeBatchSize: 1_000,
      onOutcome: undefined,
      logRawKeys: false,
      logOutcomes: false,
      telemetry: true,
      steps: null,
      route: {},
    });
  });

  it('takes the steps options: the key secret as bytes, the result bound by default', () => {
    const keySecret = 'k'.repeat(32);
    expect(resolveModuleSettings({ steps: { keySecret } }).steps).toEqual({
      keySecret: Buffer.from(keySecret),
      maxResultBytes: IDEMPOTENCY_DEFAULTS.maxStepResultBytes,
    });
    expect(() => resolveModuleSettings({ steps: { keySecret: Buffer.alloc(31) } })).toThrow(
      /at least 32 bytes/,
    );
    expect(() => resolveModuleSettings({ steps: { keySecret, maxResultBytes: 0 } })).toThrow(
      /steps\.maxResultBytes/,
    );
    expect(() => resolveModuleSettings({ steps: { keySecret, secret: 'x' } as never })).toThrow(
      /unknown option "secret" in the steps options/,
    );
  });

  it('lower-cases the header name for lookups and upper-cases auto methods', () => {
    const settings = resolveModuleSettings({
      headerName: 'X-Request-Key',
      autoMethods: ['post', 'Patch'],
    });
    expect(settings.headerName).toBe('x-request-key');
    expect(settings.headerDisplayName).toBe('X-Request-Key');
    expect(settings.autoMethods).toEqual(new Set(['POST', 'PATCH']));
  });

  it('passes route-level options on, without the module-only ones', () => {
    const scope = () => 'tenant';
    const settings = resolveModuleSettings({
      ttlMs: 1_000,
      scope,
      headerName: 'K',
      purgeBatchSize: 5,
    });
    expect(settings.route).toEqual({ ttlMs: 1_000, scope });
  });

  it('allows purgeIntervalMs 0, which turns the purge off', () => {
    expect(resolveModuleSettings({ purgeIntervalMs: 0 }).purgeIntervalMs).toBe(0);
  });

  it.each([0, -1, NaN, Infinity])('rejects storeTimeoutMs and purgeBatchSize %p', (value) => {
    expect(() => resolveModuleSettings({ storeTimeoutMs: value })).toThrow(
      `nestjs-idempotency: storeTimeoutMs must be a positive number, got ${value}.`,
    );
    expect(() => resolveModuleSettings({ purgeBatchSize: value })).toThrow(
      `nestjs-idempotency: purgeBatchSize must be a positive number, got ${value}.`,
    );
  });

  // Both feed Node timers, which run a delay that is NaN or above 2^31-1 ms after 1 ms: the purge
  // would loop without pause, and every store call would time out into a 503.
  it.each([NaN, Infinity, 2 ** 31])('rejects purgeIntervalMs %p', (value) => {
    expect(() => resolveModuleSettings({ purgeIntervalMs: value })).toThrow(/purgeIntervalMs/);
  });

  it('rejects a storeTimeoutMs that a timer cannot hold', () => {
    expect(() => resolveModuleSettings({ storeTimeoutMs: 2 ** 31 })).toThrow(/storeTimeoutMs/);
    expect(resolveModuleSettings({ storeTimeoutMs: 2 ** 31 - 1 }).storeTimeoutMs).toBe(2 ** 31 - 1);
  });

  it("does not mutate the caller's options", () => {
    const options: IdempotencyModuleOptions = deepFreeze({
      headerName: 'X-Key',
      autoMethods: ['post'],
      ttlMs: 1_000,
      fingerprint: { excludeFields: ['meta.sentAt'] },
    });
    const settings = resolveModuleSettings(options);
    expect(settings.route).not.toBe(options);
    expect(options).toEqual({
      headerName: 'X-Key',
      autoMethods: ['post'],
      ttlMs: 1_000,
      fingerprint: { excludeFields: ['meta.sentAt'] },
    });
  });
});

describe('resolveRouteSettings', () => {
  it('applies the defaults', () => {
    const settings = resolveRouteSettings({}, {}, true);
    expect(settings).toEqual({
      required: true,
      ttlMs: IDEMPOTENCY_DEFAULTS.ttlMs,
      lockTimeoutMs: IDEMPOTENCY_DEFAULTS.lockTimeoutMs,
      fingerprint: undefined,
      excludedFields: new Set(),
      storeStatus: isStoredStatusByDefault,
      replayHeaders: ['content-type', 'location'],
      maxResponseBytes: IDEMPOTENCY_DEFAULTS.maxResponseBytes,
      scope: expect.any(Function),
      transactional: false,
      rollbackOnClientError: false,
      concurrency: 'reject',
      waitTimeoutMs: IDEMPOTENCY_DEFAULTS.waitTimeoutMs,
      statementTimeoutMs: IDEMPOTENCY_DEFAULTS.statementTimeoutMs,
    });
    expect([settings.ttlMs, settings.lockTimeoutMs, settings.maxResponseBytes]).toEqual([
      86_400_000, 60_000, 1_048_576,
    ]);
    expect(settings.statementTimeoutMs).toBe(30_000);
  });

  it('takes statementTimeoutMs as PostgreSQL takes statement_timeout: 0 is off, else whole ms', () => {
    expect(resolveRouteSettings({ statementTimeoutMs: 0 }, {}, true).statementTimeoutMs).toBe(0);
    expect(
      resolveRouteSettings({ statementTimeoutMs: 5_000 }, { statementTimeoutMs: 300_000 }, true)
        .statementTimeoutMs,
    ).toBe(300_000);
    for (const value of [-1, 1.5, NaN, Infinity, 2 ** 31]) {
      expect(() => resolveRouteSettings({}, { statementTimeoutMs: value }, true)).toThrow(
        /statementTimeoutMs/,
      );
    }
  });

  it('waits for duplicates by default in transactional mode only', () => {
    expect(resolveRouteSettings({}, { transactional: true }, true).concurrency).toBe('wait');
    expect(resolveRouteSettings({ transactional: true }, {}, true).concurrency).toBe('wait');
    expect(
      resolveRouteSettings({}, { transactional: true, concurrency: 'reject' }, true).concurrency,
    ).toBe('reject');
    expect(resolveRouteSettings({ concurrency: 'wait' }, {}, true).concurrency).toBe('wait');
    expect(() => resolveRouteSettings({}, { waitTimeoutMs: 2 ** 31 }, true)).toThrow(
      /waitTimeoutMs/,
    );
  });

  it('requires a key on decorated routes and not on auto routes, unless configured', () => {
    expect(resolveRouteSettings({}, {}, true).required).toBe(true);
    expect(resolveRouteSettings({}, {}, false).required).toBe(false);
    expect(resolveRouteSettings({ required: false }, {}, true).required).toBe(false);
    expect(resolveRouteSettings({ required: false }, { required: true }, false).required).toBe(
      true,
    );
  });

  it("lets a route's options override the module's", () => {
    const settings = resolveRouteSettings(
      { ttlMs: 1_000, lockTimeoutMs: 2_000, replayHeaders: ['X-A'] },
      { ttlMs: 5_000, replayHeaders: ['X-B'], fingerprint: { excludeFields: ['sentAt'] } },
      true,
    );
    expect(settings.ttlMs).toBe(5_000);
    expect(settings.lockTimeoutMs).toBe(2_000);
    expect(settings.replayHeaders).toEqual(['content-type', 'location', 'x-b']);
    expect(settings.excludedFields).toEqual(new Set(['sentAt']));
  });

  it("keeps the module's value where the route option is undefined", () => {
    const storeStatus = (status: number) => status === 201;
    const settings = resolveRouteSettings(
      { ttlMs: 1_000, required: false, storeStatus },
      { ttlMs: undefined, required: undefined, storeStatus: undefined },
      true,
    );
    expect(settings.ttlMs).toBe(1_000);
    expect(settings.required).toBe(false);
    expect(settings.storeStatus).toBe(storeStatus);
  });

  it.each(['ttlMs', 'lockTimeoutMs', 'maxResponseBytes'] as const)(
    'rejects an invalid %s',
    (name) => {
      for (const value of [0, -1, NaN]) {
        const message = `nestjs-idempotency: ${name} must be a positive number, got ${value}.`;
        expect(() => resolveRouteSettings({ [name]: value }, {}, true)).toThrow(message);
        expect(() => resolveRouteSettings({}, { [name]: value }, true)).toThrow(message);
      }
    },
  );

  it("does not mutate the module's or the route's options", () => {
    const module = deepFreeze({ ttlMs: 1_000, replayHeaders: ['X-A'] });
    const route = deepFreeze({ ttlMs: undefined, fingerprint: { excludeFields: ['a.b'] } });
    resolveRouteSettings(module, route, true);
    expect(module).toEqual({ ttlMs: 1_000, replayHeaders: ['X-A'] });
    expect(route).toEqual({ ttlMs: undefined, fingerprint: { excludeFields: ['a.b'] } });
    expect(Object.keys(route)).toEqual(['ttlMs', 'fingerprint']);
  });

  describe('default scope', () => {
    const scope = resolveRouteSettings({}, {}, true).scope;

    it.each<[string, unknown, string]>([
      ['a string user id', { user: { id: 'u-1' } }, 'u-1'],
      ['a number user id, as a string', { user: { id: 42 } }, '42'],
      ['a zero user id', { user: { id: 0 } }, '0'],
      ['a bigint user id', { user: { id: 7n } }, '7'],
      ['no user, as the anonymous scope', {}, ''],
      ['a null user, as the anonymous scope', { user: null }, ''],
      ['the false user of optional authentication, as the anonymous scope', { user: false }, ''],
      [
        'the JWT subject of a user without an id',
        { user: { sub: 'alice', username: 'a' } },
        'sub:alice',
      ],
      ['the id before the subject', { user: { id: 'u-2', sub: 'other' } }, 'u-2'],
      ['the subject when the id is empty', { user: { id: '', sub: 's-1' } }, 'sub:s-1'],
      ['the subject when the id is null', { user: { id: null, sub: 5 } }, 'sub:5'],
      [
        'an id that looks like a subject scope, apart from it',
        { user: { id: 'sub:5' } },
        'id:sub:5',
      ],
      ['an id that looks like an escaped id, apart from it', { user: { id: 'id:x' } }, 'id:id:x'],
    ])('reads %s', (_name, raw, expected) => {
      expect(scope(withRaw(raw))).toBe(expected);
    });

    it('never gives an id and a subject the same scope', () => {
      const scopes = [
        { id: '5' },
        { sub: '5' },
        { id: 'sub:5' },
        { id: 'id:sub:5' },
        { id: 'id:5' },
      ].map((user) => scope(withRaw({ user })));
      expect(new Set(scopes).size).toBe(scopes.length);
    });

    // A user the default cannot tell from another must not share one scope with them.
    it.each<[string, unknown]>([
      ['a user with neither id nor sub', { user: { username: 'bob' } }],
      ['an empty user', { user: {} }],
      ['a null id and no sub', { user: { id: null } }],
      ['empty strings', { user: { id: '', sub: '' } }],
      ['an object id', { user: { id: { toString: () => 'x' } } }],
      ['a non-finite id', { user: { id: Number.NaN } }],
      ['a user that is a string', { user: 'alice' }],
    ])('refuses %s', (_name, raw) => {
      expect(() => scope(withRaw(raw))).toThrow(ScopeUnresolvedError);
      expect(() => scope(withRaw(raw))).toThrow(/scope option/);
    });

    it('is replaced by a configured scope', () => {
      const custom = resolveRouteSettings({ scope: (info) => `tenant:${info.url}` }, {}, true);
      expect(custom.scope(withRaw({ user: { id: 1 } }))).toBe('tenant:/orders');
    });
  });
});

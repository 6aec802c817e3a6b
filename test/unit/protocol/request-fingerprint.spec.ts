import { createHash } from 'node:crypto';
import { resolveRouteSettings } from '../../../lib/idempotency-options.defaults';
import type { IdempotencyRequestInfo } from '../../../lib/interfaces/idempotency-options.interface';
import { requestFingerprint, sha256 } from '../../../lib/protocol/request-fingerprint';

const NONE: ReadonlySet<string> = new Set();

function request(overrides: Partial<IdempotencyRequestInfo> = {}): IdempotencyRequestInfo {
  return { method: 'POST', url: '/orders', body: { item: 'book', qty: 2 }, raw: {}, ...overrides };
}

function hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

describe('requestFingerprint', () => {
  it('is the SHA-256 of method, url and canonical body', () => {
    expect(requestFingerprint(request(), undefined, NONE)).toBe(
      hex('POST\n/orders\n{"item":"book","qty":2}'),
    );
    expect(sha256('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  it('gives the same fingerprint to the same content in another key order', () => {
    const reordered = request({ body: { qty: 2, item: 'book' } });
    expect(requestFingerprint(reordered, undefined, NONE)).toBe(
      requestFingerprint(request(), undefined, NONE),
    );
  });

  it.each([
    ['method', { method: 'PUT' }],
    ['url', { url: '/orders/2' }],
    ['query string', { url: '/orders?dry=1' }],
    ['body', { body: { item: 'book', qty: 3 } }],
  ])('changes with the %s', (_name, change: Partial<IdempotencyRequestInfo>) => {
    expect(requestFingerprint(request(change), undefined, NONE)).not.toBe(
      requestFingerprint(request(), undefined, NONE),
    );
  });

  it('is null when fingerprinting is turned off, even with a compute function', () => {
    expect(requestFingerprint(request(), { enabled: false }, NONE)).toBeNull();
    expect(requestFingerprint(request(), { enabled: false, compute: () => 'x' }, NONE)).toBeNull();
  });

  it('hashes what a custom compute returns, given the request', () => {
    const seen: IdempotencyRequestInfo[] = [];
    const compute = (info: IdempotencyRequestInfo): string => {
      seen.push(info);
      return `${info.method} ${info.url}`;
    };
    const info = request();
    expect(requestFingerprint(info, { compute }, NONE)).toBe(hex('POST /orders'));
    expect(seen).toEqual([info]);
    // The body no longer counts: compute ignored it.
    expect(requestFingerprint(request({ body: { other: true } }), { compute }, NONE)).toBe(
      hex('POST /orders'),
    );
  });

  it('ignores the fields named in excludeFields', () => {
    const settings = resolveRouteSettings(
      {},
      { fingerprint: { excludeFields: ['meta.sentAt'] } },
      true,
    );
    const at = (sentAt: string) => request({ body: { qty: 2, meta: { sentAt, source: 'app' } } });
    const fingerprint = (info: IdempotencyRequestInfo) =>
      requestFingerprint(info, settings.fingerprint, settings.excludedFields);

    expect(fingerprint(at('10:00'))).toBe(fingerprint(at('10:01')));
    expect(fingerprint(at('10:00'))).toBe(hex('POST\n/orders\n{"meta":{"source":"app"},"qty":2}'));
    // Fields not excluded still count.
    expect(
      fingerprint(request({ body: { qty: 3, meta: { sentAt: '10:00', source: 'app' } } })),
    ).not.toBe(fingerprint(at('10:00')));
  });
});

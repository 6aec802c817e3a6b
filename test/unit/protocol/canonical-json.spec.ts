import {
  BodyTooDeepError,
  MAX_BODY_DEPTH,
  canonicalJson,
} from '../../../lib/protocol/canonical-json';

describe('canonicalJson', () => {
  it('sorts object keys at every depth, so key order does not matter', () => {
    const a = { b: 1, a: { d: [{ y: 1, x: 2 }], c: 'c' } };
    const b = { a: { c: 'c', d: [{ x: 2, y: 1 }] }, b: 1 };
    expect(canonicalJson(a)).toBe('{"a":{"c":"c","d":[{"x":2,"y":1}]},"b":1}');
    expect(canonicalJson(b)).toBe(canonicalJson(a));
  });

  it('keeps array order, since it is part of the content', () => {
    expect(canonicalJson([3, 1, 2])).toBe('[3,1,2]');
    expect(canonicalJson([1, 2, 3])).not.toBe(canonicalJson([3, 2, 1]));
  });

  it('writes scalars as JSON does', () => {
    expect(canonicalJson('a"b\\c\n')).toBe('"a\\"b\\\\c\\n"');
    expect(canonicalJson('é')).toBe('"é"');
    expect(canonicalJson(true)).toBe('true');
    expect(canonicalJson(null)).toBe('null');
    expect(canonicalJson(-1.5)).toBe('-1.5');
    // A string and a number with the same digits are different requests.
    expect(canonicalJson({ qty: '1' })).not.toBe(canonicalJson({ qty: 1 }));
  });

  it('writes non-finite numbers as null, as JSON.stringify does', () => {
    expect(canonicalJson({ a: NaN, b: Infinity, c: -Infinity })).toBe(
      '{"a":null,"b":null,"c":null}',
    );
  });

  it('drops undefined fields, and writes undefined items and bodies as null', () => {
    expect(canonicalJson({ a: undefined, b: 1 })).toBe('{"b":1}');
    expect(canonicalJson({ b: 1 })).toBe(canonicalJson({ a: undefined, b: 1 }));
    expect(canonicalJson([undefined, 1])).toBe('[null,1]');
    expect(canonicalJson(undefined)).toBe('null');
  });

  it('writes the holes of a sparse array as empty, as it always has', () => {
    // eslint-disable-next-line no-sparse-arrays
    expect(canonicalJson([, 1])).toBe('[,1]');
    expect(canonicalJson(new Array(3))).toBe('[,,]');
  });

  it('writes a Buffer body as base64, so raw bodies fingerprint by their bytes', () => {
    expect(canonicalJson(Buffer.from('hello'))).toBe('#bytes:aGVsbG8=');
    expect(canonicalJson(Buffer.from('hello'))).not.toBe(canonicalJson(Buffer.from('hellp')));
    expect(canonicalJson(Buffer.alloc(0))).toBe('#bytes:');
  });

  it('never writes a Buffer body as text a parsed JSON body could also produce', () => {
    const base64 = Buffer.from('hi').toString('base64');
    expect(canonicalJson(Buffer.from('hi'))).not.toBe(canonicalJson({ $bytes: base64 }));
    expect(canonicalJson(Buffer.from('hi'))).not.toBe(canonicalJson(`#bytes:${base64}`));
  });

  it('writes values with toJSON (dates) as JSON.stringify does', () => {
    const body = { at: new Date('2026-01-02T03:04:05.000Z') };
    expect(canonicalJson(body)).toBe('{"at":"2026-01-02T03:04:05.000Z"}');
    expect(canonicalJson(body)).not.toBe(canonicalJson({ at: new Date(0) }));
  });

  it('leaves out excluded top-level fields', () => {
    const exclude = new Set(['sentAt']);
    expect(canonicalJson({ sentAt: 1, qty: 2 }, exclude)).toBe('{"qty":2}');
    expect(canonicalJson({ sentAt: 1, qty: 2 }, exclude)).toBe(
      canonicalJson({ sentAt: 99, qty: 2 }, exclude),
    );
  });

  it('leaves out excluded nested fields by dot path, and only at that path', () => {
    const exclude = new Set(['meta.sentAt']);
    const body = { sentAt: 1, meta: { sentAt: 2, source: 'app' } };
    expect(canonicalJson(body, exclude)).toBe('{"meta":{"source":"app"},"sentAt":1}');
  });

  it('excludes a whole subtree when its path is excluded', () => {
    expect(canonicalJson({ meta: { a: 1 }, qty: 2 }, new Set(['meta']))).toBe('{"qty":2}');
  });
});

describe('canonicalJson depth limit', () => {
  const nested = (depth: number): unknown =>
    JSON.parse('['.repeat(depth) + ']'.repeat(depth)) as unknown;

  it(`fingerprints bodies nested up to ${MAX_BODY_DEPTH} levels`, () => {
    expect(canonicalJson(nested(MAX_BODY_DEPTH))).toBe(
      '['.repeat(MAX_BODY_DEPTH) + ']'.repeat(MAX_BODY_DEPTH),
    );
  });

  it('refuses deeper bodies with a BodyTooDeepError instead of overflowing the stack', () => {
    expect(() => canonicalJson(nested(MAX_BODY_DEPTH + 2))).toThrow(BodyTooDeepError);
    // 50 000 levels fit in a 100 kB body and used to exhaust the call stack.
    expect(() => canonicalJson(nested(50_000))).toThrow(BodyTooDeepError);
  });
});

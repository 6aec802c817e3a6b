import type { RawHeader } from './hostile-http';

/*
 * A small seeded generator for the property-based run over hostile input (fast-check is not a
 * dependency of this project). Every case is a pure function of (seed, index), so a failure names
 * the seed and index that reproduce it: RELIABILITY_SEED=<seed>.
 */

/** mulberry32: tiny, fast, and good enough to spread test inputs. */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)];
  }

  /** A string of `length` characters drawn from `alphabet`. */
  string(alphabet: string, length: number): string {
    let out = '';
    for (let i = 0; i < length; i++) {
      out += alphabet[this.int(0, alphabet.length - 1)];
    }
    return out;
  }

  bytes(length: number): Buffer {
    const out = Buffer.alloc(length);
    for (let i = 0; i < length; i++) {
      out[i] = this.int(0, 255);
    }
    return out;
  }
}

const PRINTABLE = Array.from({ length: 95 }, (_, i) => String.fromCharCode(0x20 + i)).join('');
const SAFE = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:';
const SQL_BITS = [
  "'",
  "''",
  '"',
  ';',
  '--',
  '/*',
  '*/',
  '%',
  '_',
  '\\',
  '$1',
  '$$',
  "' OR '1'='1",
  "'; DROP TABLE idempotency_records; --",
  "E'\\x00'",
  '\\N',
];
const UNICODE = ['é', 'ü', 'ß', 'ключ', '鍵', '🔑', '\u00a0', '\u200b', '\u2028', '\ufeff', 'ﬃ'];

/** The shape of a generated key header value, for reports. */
export type KeyShape =
  | 'valid'
  | 'sql'
  | 'quoted'
  | 'bad-quoting'
  | 'whitespace'
  | 'empty'
  | 'too-long'
  | 'huge'
  | 'control'
  | 'non-ascii-utf8'
  | 'latin1'
  | 'comma-joined';

/** One generated key header value, as bytes. */
export interface GeneratedKey {
  shape: KeyShape;
  value: Buffer;
}

export function generateKey(rng: Rng, unique: string): GeneratedKey {
  const shape = rng.pick<KeyShape>([
    'valid',
    'valid',
    'sql',
    'quoted',
    'bad-quoting',
    'whitespace',
    'empty',
    'too-long',
    'huge',
    'control',
    'non-ascii-utf8',
    'latin1',
    'comma-joined',
  ]);
  const valid = (max: number) => `${unique}${rng.string(PRINTABLE, rng.int(0, max))}`;
  const text = (value: string) => ({ shape, value: Buffer.from(value, 'latin1') });
  switch (shape) {
    case 'valid':
      return text(valid(255 - unique.length));
    case 'sql':
      return text(
        `${unique}${rng.pick(SQL_BITS)}${rng.pick(SQL_BITS)}${rng.string(SAFE, rng.int(0, 8))}`,
      );
    case 'quoted': {
      const inner = valid(60).replace(/[\\"]/g, (ch) => `\\${ch}`);
      return text(`"${inner}"`);
    }
    case 'bad-quoting':
      return text(
        rng.pick([
          `"${unique}`,
          `${unique}"`,
          `"${unique}"x"`,
          `"${unique}\\"`,
          `"${unique}\\x"`,
          '"',
        ]),
      );
    case 'whitespace':
      return text(
        `${rng.pick(['', ' ', '\t', '  \t'])}${rng.chance(0.5) ? unique : ''}${rng.pick(['', ' ', '\t'])}`,
      );
    case 'empty':
      return text('');
    case 'too-long':
      return text(`${unique}${rng.string(SAFE, rng.int(256, 2000) - unique.length)}`);
    case 'huge':
      return text(`${unique}${rng.string(SAFE, rng.int(10_000, 100_000))}`);
    case 'control': {
      const control = String.fromCharCode(rng.pick([0, 1, 8, 9, 10, 11, 12, 13, 27, 31, 127]));
      const at = rng.int(0, unique.length);
      return text(`${unique.slice(0, at)}${control}${unique.slice(at)}`);
    }
    case 'non-ascii-utf8':
      return { shape, value: Buffer.from(`${unique}${rng.pick(UNICODE)}`, 'utf8') };
    case 'latin1':
      return {
        shape,
        value: Buffer.concat([Buffer.from(unique), Buffer.from([rng.int(0x80, 0xff)])]),
      };
    case 'comma-joined':
      return text(`${unique}-a,${rng.pick(['', ' '])}${unique}-b`);
  }
}

/**
 * What the specification (README) says of the key headers of a request, computed independently of
 * the library: `missing`, `invalid`, or the key. Header values are read as Node reads them (bytes
 * as latin1, leading and trailing spaces and tabs dropped).
 */
export function specifiedKey(
  values: readonly Buffer[],
): { kind: 'missing' | 'invalid' } | { kind: 'valid'; key: string } {
  if (values.length === 0) {
    return { kind: 'missing' };
  }
  if (values.length > 1) {
    return { kind: 'invalid' };
  }
  let key = values[0].toString('latin1').replace(/^[ \t]+|[ \t]+$/g, '');
  if (key.startsWith('"')) {
    if (key.length < 2 || !key.endsWith('"')) {
      return { kind: 'invalid' };
    }
    const inner = key.slice(1, -1);
    // sf-string: only \" and \\ escapes, no bare quote.
    if (!/^(?:[^"\\]|\\["\\])*$/.test(inner)) {
      return { kind: 'invalid' };
    }
    key = inner.replace(/\\(["\\])/g, '$1');
  }
  if (key.length < 1 || key.length > 255 || !/^[\x20-\x7e]+$/.test(key)) {
    return { kind: 'invalid' };
  }
  return { kind: 'valid', key };
}

export type BodyShape =
  | 'json'
  | 'deep-ok'
  | 'deep-too-deep'
  | 'not-json'
  | 'invalid-utf8'
  | 'empty'
  | 'large'
  | 'over-limit'
  | 'random-bytes';

export interface GeneratedBody {
  shape: BodyShape;
  bytes: Buffer;
}

export function generateBody(rng: Rng, allowOverLimit: boolean): GeneratedBody {
  const shapes: BodyShape[] = [
    'json',
    'json',
    'json',
    'deep-ok',
    'deep-too-deep',
    'not-json',
    'invalid-utf8',
    'empty',
    'large',
    'random-bytes',
  ];
  const shape = allowOverLimit && rng.chance(0.1) ? 'over-limit' : rng.pick(shapes);
  const utf8 = (text: string) => ({ shape, bytes: Buffer.from(text, 'utf8') });
  switch (shape) {
    case 'json':
      return utf8(JSON.stringify(jsonValue(rng, 4)));
    case 'deep-ok': {
      const depth = rng.int(2, 200);
      return utf8(rng.chance(0.5) ? '['.repeat(depth) + ']'.repeat(depth) : nestObjects(depth));
    }
    case 'deep-too-deep': {
      const depth = rng.int(300, 20_000);
      return utf8(rng.chance(0.5) ? '['.repeat(depth) + ']'.repeat(depth) : nestObjects(depth));
    }
    case 'not-json':
      return utf8(
        rng.pick(['{', '{"a":', 'nope', '{"a":1,}', "{'a':1}", 'NaN', '[1,2', '\u0000', 'a=1&b=2']),
      );
    case 'invalid-utf8':
      return {
        shape,
        bytes: Buffer.concat([
          Buffer.from('{"s":"'),
          Buffer.from(
            rng.pick([[0xff], [0xc3], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0x80]]),
          ),
          Buffer.from('"}'),
        ]),
      };
    case 'empty':
      return { shape, bytes: Buffer.alloc(0) };
    case 'large':
      // Below Express's default 100 kB limit, large enough to be stored and fingerprinted.
      return utf8(JSON.stringify({ blob: rng.string(SAFE, rng.int(10_000, 90_000)) }));
    case 'over-limit':
      // Above both platforms' default limits (100 kB Express, 1 MiB Fastify).
      return utf8(JSON.stringify({ blob: 'x'.repeat(rng.int(1_100_000, 1_500_000)) }));
    case 'random-bytes':
      return { shape, bytes: rng.bytes(rng.int(1, 200)) };
  }
}

function nestObjects(depth: number): string {
  return '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function jsonValue(rng: Rng, depth: number): Json {
  const kind = depth <= 0 ? rng.int(0, 3) : rng.int(0, 5);
  switch (kind) {
    case 0:
      return null;
    case 1:
      return rng.chance(0.5);
    case 2:
      return rng.pick([0, -1, 1e308, -0, 123456789012345, 0.1, rng.int(-1000, 1000)]);
    case 3:
      return rng.chance(0.3)
        ? rng.pick(UNICODE) + rng.pick(SQL_BITS)
        : rng.string(PRINTABLE, rng.int(0, 20));
    case 4:
      return Array.from({ length: rng.int(0, 4) }, () => jsonValue(rng, depth - 1));
    default:
      return Object.fromEntries(
        Array.from({ length: rng.int(0, 4) }, () => [
          rng.chance(0.2)
            ? rng.pick(['__proto__', 'constructor', 'toJSON', ''])
            : rng.string(SAFE, rng.int(1, 6)),
          jsonValue(rng, depth - 1),
        ]),
      );
  }
}

export function generateContentType(rng: Rng): string | null {
  return rng.pick([
    'application/json',
    'application/json',
    'application/json; charset=utf-8',
    'APPLICATION/JSON',
    'application/json; charset=latin1',
    'application/json; charset=utf-16',
    'application/json;;;',
    'application/vnd.api+json',
    'text/plain',
    'application/x-www-form-urlencoded',
    'application/xml',
    'multipart/form-data; boundary=x',
    'application/octet-stream',
    '',
    'a/b/c',
    null,
  ]);
}

/** Headers of a generated case: zero to three key headers in assorted name casings. */
export function generateKeyHeaders(
  rng: Rng,
  unique: string,
): { headers: RawHeader[]; keys: GeneratedKey[] } {
  const count = rng.pick([0, 1, 1, 1, 1, 1, 1, 2, 3]);
  const keys = Array.from({ length: count }, () => generateKey(rng, unique));
  const headers = keys.map((key): RawHeader => [
    rng.pick(['Idempotency-Key', 'idempotency-key', 'IDEMPOTENCY-KEY']),
    key.value,
  ]);
  return { headers, keys };
}

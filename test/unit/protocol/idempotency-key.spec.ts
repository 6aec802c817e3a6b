import { MAX_KEY_LENGTH, parseIdempotencyKey } from '../../../lib/protocol/idempotency-key';

const EMPTY = { kind: 'invalid', reason: 'The idempotency key is empty.' };
const TOO_LONG = { kind: 'invalid', reason: 'The idempotency key is longer than 255 characters.' };
const NOT_ASCII = {
  kind: 'invalid',
  reason: 'The idempotency key may hold only printable ASCII characters.',
};
const BAD_QUOTES = { kind: 'invalid', reason: 'The quoted key is not a valid RFC 8941 string.' };

describe('parseIdempotencyKey', () => {
  it('reports a missing key when the header is absent', () => {
    expect(parseIdempotencyKey([])).toEqual({ kind: 'missing' });
  });

  it.each([
    ['a UUID', '8e03978e-40d5-43e8-bc93-6894a57f9324', '8e03978e-40d5-43e8-bc93-6894a57f9324'],
    ['a single character', 'k', 'k'],
    ['inner spaces and punctuation', 'order 42: retry #1', 'order 42: retry #1'],
    // Header values arrive with optional whitespace around them (RFC 9110 OWS).
    ['surrounding spaces', '  abc  ', 'abc'],
    // Outside quotes these are ordinary characters: only a leading quote starts the sf-string form.
    ['a quote and a backslash in the bare form', 'a"b\\c', 'a"b\\c'],
  ])('accepts %s', (_name, header, key) => {
    expect(parseIdempotencyKey([header])).toEqual({ kind: 'valid', key });
  });

  it(`accepts ${MAX_KEY_LENGTH} characters and rejects ${MAX_KEY_LENGTH + 1}`, () => {
    expect(MAX_KEY_LENGTH).toBe(255);
    expect(parseIdempotencyKey(['k'.repeat(255)])).toEqual({ kind: 'valid', key: 'k'.repeat(255) });
    expect(parseIdempotencyKey(['k'.repeat(256)])).toEqual(TOO_LONG);
  });

  it('measures the length of the unquoted key, not of the header', () => {
    // 255 characters plus two quotes: 257 on the wire, still a 255-character key.
    expect(parseIdempotencyKey([`"${'k'.repeat(255)}"`])).toEqual({
      kind: 'valid',
      key: 'k'.repeat(255),
    });
    expect(parseIdempotencyKey([`"${'k'.repeat(256)}"`])).toEqual(TOO_LONG);
  });

  it.each([
    ['empty', ''],
    ['whitespace only', ' \t '],
    ['an empty quoted string', '""'],
  ])('rejects a key that is %s', (_name, header) => {
    expect(parseIdempotencyKey([header])).toEqual(EMPTY);
  });

  it.each([
    ['a non-ASCII letter', 'clé-1'],
    ['an emoji', 'key-🔑'],
    ['a tab inside', 'a\tb'],
    ['DEL (0x7f)', 'a\x7fb'],
    ['NUL', 'a\x00b'],
    ['a non-ASCII letter inside quotes', '"clé"'],
  ])('rejects %s', (_name, header) => {
    expect(parseIdempotencyKey([header])).toEqual(NOT_ASCII);
  });

  // Node decodes header bytes as latin1, so a 0xA0 byte arrives as U+00A0, which String#trim
  // also strips: only spaces and tabs are header whitespace (RFC 9110 OWS).
  it('rejects a no-break space around the key rather than trimming it', () => {
    expect(parseIdempotencyKey(['\u00a0abc'])).toEqual(NOT_ASCII);
  });

  it('reads the RFC 8941 quoted form as the same key as the bare form', () => {
    expect(parseIdempotencyKey(['"abc-123"'])).toEqual(parseIdempotencyKey(['abc-123']));
    expect(parseIdempotencyKey(['"abc-123"'])).toEqual({ kind: 'valid', key: 'abc-123' });
  });

  it.each([
    ['an escaped quote', '"a\\"b"', 'a"b'],
    ['an escaped backslash', '"a\\\\b"', 'a\\b'],
    ['an escaped backslash just before the closing quote', '"a\\\\"', 'a\\'],
  ])('unescapes %s inside quotes', (_name, header, key) => {
    expect(parseIdempotencyKey([header])).toEqual({ kind: 'valid', key });
  });

  it.each([
    ['no closing quote', '"abc'],
    ['a lone quote', '"'],
    ['an unescaped quote inside', '"a"b"'],
    ['an unknown escape', '"a\\x"'],
    // The backslash escapes the last quote, so the string never ends.
    ['an escaped closing quote', '"abc\\"'],
  ])('rejects a quoted key with %s', (_name, header) => {
    expect(parseIdempotencyKey([header])).toEqual(BAD_QUOTES);
  });

  it('rejects more than one header rather than picking one, even when they agree', () => {
    const twice = {
      kind: 'invalid',
      reason: 'The request carries more than one idempotency key header.',
    };
    expect(parseIdempotencyKey(['a', 'b'])).toEqual(twice);
    expect(parseIdempotencyKey(['a', 'a'])).toEqual(twice);
  });
});

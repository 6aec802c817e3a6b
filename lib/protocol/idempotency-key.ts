/** Longest key accepted, in characters. Keeps the unique index small and comparisons cheap. */
export const MAX_KEY_LENGTH = 255;

/** Result of reading the key header of one request. */
export type KeyParseResult =
  { kind: 'valid'; key: string } | { kind: 'missing' } | { kind: 'invalid'; reason: string };

const PRINTABLE_ASCII = /^[\x20-\x7e]+$/;
const OPTIONAL_WHITESPACE = /^[ \t]+|[ \t]+$/g;
const SPACE = 0x20;
const TAB = 0x09;

/**
 * Reads the idempotency key from every occurrence of its header in the request.
 *
 * A key is 1 to 255 printable ASCII characters. The RFC 8941 sf-string form (`"abc"`, as the IETF
 * draft specifies the header) is the same key as the bare form (`abc`). More than one header is
 * rejected rather than guessed between, since Node joins repeated headers with `", "`.
 */
export function parseIdempotencyKey(values: readonly string[]): KeyParseResult {
  if (values.length === 0) {
    return { kind: 'missing' };
  }
  if (values.length > 1) {
    return { kind: 'invalid', reason: 'The request carries more than one idempotency key header.' };
  }
  const raw = withoutOptionalWhitespace(values[0]);
  const key = raw.startsWith('"') ? unquoteStructuredString(raw) : raw;
  if (key === null) {
    return { kind: 'invalid', reason: 'The quoted key is not a valid RFC 8941 string.' };
  }
  if (key.length === 0) {
    return { kind: 'invalid', reason: 'The idempotency key is empty.' };
  }
  if (key.length > MAX_KEY_LENGTH) {
    return {
      kind: 'invalid',
      reason: `The idempotency key is longer than ${MAX_KEY_LENGTH} characters.`,
    };
  }
  if (!PRINTABLE_ASCII.test(key)) {
    return {
      kind: 'invalid',
      reason: 'The idempotency key may hold only printable ASCII characters.',
    };
  }
  return { kind: 'valid', key };
}

/**
 * The value without HTTP's optional whitespace around it. String#trim would also drop U+00A0, a
 * non-ASCII byte. Most keys have none, and are returned as they are without a regex pass.
 */
function withoutOptionalWhitespace(value: string): string {
  const first = value.charCodeAt(0);
  const last = value.charCodeAt(value.length - 1);
  return first === SPACE || first === TAB || last === SPACE || last === TAB
    ? value.replace(OPTIONAL_WHITESPACE, '')
    : value;
}

/** Unquotes an RFC 8941 sf-string (`"a\"b"` -> `a"b`); `null` when it is malformed. */
function unquoteStructuredString(input: string): string | null {
  if (input.length < 2 || !input.endsWith('"')) {
    return null;
  }
  let out = '';
  for (let i = 1; i < input.length - 1; i++) {
    const ch = input[i];
    if (ch === '\\') {
      const next = input[i + 1];
      if ((next !== '"' && next !== '\\') || i + 1 >= input.length - 1) {
        return null;
      }
      out += next;
      i++;
    } else if (ch === '"') {
      return null;
    } else {
      out += ch;
    }
  }
  return out;
}

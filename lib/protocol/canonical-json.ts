/**
 * Serialises a parsed request body so that equal content gives equal text: object keys are sorted,
 * so `{"a":1,"b":2}` and `{"b":2,"a":1}` fingerprint alike. Fields at the dot paths in `exclude`
 * are left out (a path applies inside every element of an array on the way). Values with `toJSON`
 * (dates) are written as JSON.stringify would; raw Buffer bodies as base64 behind a `#` that no
 * JSON text can start with, so they never collide with a parsed body.
 */
export function canonicalJson(value: unknown, exclude: ReadonlySet<string> = EMPTY): string {
  return write(value, '', exclude, 0) ?? 'null';
}

/**
 * Deepest nesting fingerprinted. JSON.parse accepts any depth, and a 100 kB body can nest 50 000
 * levels deep: far past the call stack. No real API body comes near this.
 */
export const MAX_BODY_DEPTH = 256;

/** Raised for a body that cannot be fingerprinted (nested deeper than MAX_BODY_DEPTH). */
export class BodyTooDeepError extends Error {
  constructor() {
    super(`The request body is nested more than ${MAX_BODY_DEPTH} levels deep.`);
    this.name = 'BodyTooDeepError';
  }
}

const EMPTY: ReadonlySet<string> = new Set();

function write(
  value: unknown,
  path: string,
  exclude: ReadonlySet<string>,
  depth: number,
): string | undefined {
  if (depth > MAX_BODY_DEPTH) {
    throw new BodyTooDeepError();
  }
  if (value === null) {
    return 'null';
  }
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      return Number.isFinite(value) ? String(value) : 'null';
    case 'bigint':
      return JSON.stringify(value.toString());
    case 'object':
      break;
    default:
      return undefined;
  }
  if (Buffer.isBuffer(value)) {
    return `#bytes:${value.toString('base64')}`;
  }
  const toJSON = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === 'function') {
    return write(toJSON.call(value) as unknown, path, exclude, depth + 1);
  }
  // Every request's body goes through here: the text is built by concatenation, without an
  // array per object or per array, and paths are only built when some field is excluded.
  if (Array.isArray(value)) {
    let text = '[';
    const length = value.length;
    for (let i = 0; i < length; i++) {
      // A hole (sparse arrays come from some body parsers, never from JSON.parse) stays empty,
      // as Array#join writes it: keys stored before keep their fingerprints.
      const item = i in value ? (write(value[i], path, exclude, depth + 1) ?? 'null') : '';
      text += `${i === 0 ? '' : ','}${item}`;
    }
    return `${text}]`;
  }
  const record = value as Record<string, unknown>;
  const names = Object.keys(record).sort();
  const excluding = exclude.size > 0;
  let text = '{';
  for (const name of names) {
    let childPath = '';
    if (excluding) {
      childPath = path === '' ? name : `${path}.${name}`;
      if (exclude.has(childPath)) {
        continue;
      }
    }
    const field = write(record[name], childPath, exclude, depth + 1);
    if (field !== undefined) {
      text += `${text.length === 1 ? '' : ','}${JSON.stringify(name)}:${field}`;
    }
  }
  return `${text}}`;
}

/**
 * Serialises a parsed request body so that equal content gives equal text: object keys are sorted,
 * so `{"a":1,"b":2}` and `{"b":2,"a":1}` fingerprint alike. Fields at the dot paths in `exclude`
 * are left out (a path applies inside every element of an array on the way). Values with `toJSON`
 * (dates) are written as JSON.stringify would; raw Buffer bodies as base64 behind a `#` that no
 * JSON text can start with, so they never collide with a parsed body.
 */
export function canonicalJson(value: unknown, exclude: ReadonlySet<string> = EMPTY): string {
  return write(value, '', exclude) ?? 'null';
}

const EMPTY: ReadonlySet<string> = new Set();

function write(value: unknown, path: string, exclude: ReadonlySet<string>): string | undefined {
  if (value === null) {
    return 'null';
  }
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      return Number.isFinite(value) ? JSON.stringify(value) : 'null';
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
    return write(toJSON.call(value) as unknown, path, exclude);
  }
  if (Array.isArray(value)) {
    return `[${value.map((item) => write(item, path, exclude) ?? 'null').join(',')}]`;
  }
  const record = value as Record<string, unknown>;
  const parts: string[] = [];
  for (const name of Object.keys(record).sort()) {
    const childPath = path === '' ? name : `${path}.${name}`;
    if (exclude.has(childPath)) {
      continue;
    }
    const text = write(record[name], childPath, exclude);
    if (text !== undefined) {
      parts.push(`${JSON.stringify(name)}:${text}`);
    }
  }
  return `{${parts.join(',')}}`;
}

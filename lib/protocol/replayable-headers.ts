/** Headers replayed whether or not they are configured. */
const ALWAYS = ['content-type', 'location'];

/**
 * Headers never stored, even when configured: credentials and cookies must not be handed to whoever
 * retries, and hop-by-hop or framing headers belong to one connection.
 */
const NEVER = new Set([
  'set-cookie',
  'authorization',
  'www-authenticate',
  'proxy-authenticate',
  'proxy-authorization',
  'cookie',
  'connection',
  'keep-alive',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'content-length',
  'idempotent-replayed',
]);

/** The lower-case names of the headers to store for a route, given the configured extras. */
export function replayableHeaderNames(extra: readonly string[] = []): readonly string[] {
  const names = new Set(ALWAYS);
  for (const name of extra) {
    const lower = name.toLowerCase();
    if (!NEVER.has(lower)) {
      names.add(lower);
    }
  }
  return [...names];
}

import { randomUUID } from 'node:crypto';

/** How a scenario picks the `Idempotency-Key` of its n-th request. */
export type KeyOf = (n: number) => string;

/** A new random key per request, shaped like the UUIDs real clients send. */
export function newKeys(): KeyOf {
  return () => randomUUID();
}

/** Known keys, round-robin. */
export function knownKeys(keys: readonly string[]): KeyOf {
  return (n) => keys[n % keys.length];
}

/**
 * Hot duplicates: consecutive windows of `keysPerWindow * requestsPerKey` requests, each window on
 * `keysPerWindow` fresh keys taken in turn, so every key gets `requestsPerKey` requests that
 * arrive while its first one runs or right after it, and new keys keep coming.
 */
export function hotKeys(keysPerWindow: number, requestsPerKey: number): KeyOf {
  const windowSize = keysPerWindow * requestsPerKey;
  let window = -1;
  let current: string[] = [];
  return (n) => {
    const index = Math.floor(n / windowSize);
    if (index !== window) {
      window = index;
      current = Array.from({ length: keysPerWindow }, () => randomUUID());
    }
    return current[n % keysPerWindow];
  };
}

/** `count` new random keys. */
export function makeKeys(count: number): string[] {
  return Array.from({ length: count }, () => randomUUID());
}

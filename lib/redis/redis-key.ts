import { hash } from 'node:crypto';

/**
 * The name of the Redis key that holds one key of one scope: the prefix, then the base64url
 * SHA-256 of the pair. Neither the key nor the principal appears in it (key names show in
 * `SCAN`, `MONITOR` and slow logs), and JSON keeps the pair unambiguous whatever the scope
 * contains. Every command and script touches this one name, so each runs on one Cluster slot.
 */
export function redisKeyName(prefix: string, scope: string, key: string): string {
  return `${prefix}${hash('sha256', JSON.stringify([scope, key]), 'base64url')}`;
}

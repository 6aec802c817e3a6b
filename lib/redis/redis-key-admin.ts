import type { Cluster, Redis } from 'ioredis';
import {
  type IdempotencyKeyAdmin,
  type IdempotencyKeyInfo,
  type InFlightQuery,
  KeyListingUnsupportedError,
  claimIdOf,
  fingerprintHashOf,
} from '../store/key-admin.interface';
import { TTL_OFFSET, existingKey } from './redis-record';
import { runCommand, runScript } from './redis-script-runner';
import { FORCE_RELEASE_SCRIPT, INSPECT_SCRIPT } from './redis-scripts';

const LATEST_DATE_MS = 8.64e15;

/**
 * Key administration on Redis, one key at a time. A record keeps no timestamps: what the key's
 * PTTL and its claim's TTL tell is reported (lease end, expiry), the rest is `null`. Keys cannot
 * be listed: their names are hashes, and records keep neither key nor scope.
 */
export class RedisKeyAdmin implements IdempotencyKeyAdmin {
  constructor(
    private readonly client: Redis | Cluster,
    private readonly keyName: (scope: string, key: string) => string,
  ) {}

  async findKey(
    scope: string,
    key: string,
    withResponse: boolean,
  ): Promise<IdempotencyKeyInfo | null> {
    const [record, pttl] = (await runScript(
      this.client,
      INSPECT_SCRIPT,
      this.keyName(scope, key),
      [],
    )) as [Buffer | null, number];
    if (record === null || pttl === -2) {
      return null;
    }
    const now = Date.now();
    const found = existingKey(record, 0, null);
    const ttlMs = Number(record.toString('latin1', TTL_OFFSET, record.indexOf(':', TTL_OFFSET)));
    // PTTL -1: no expiry, which only a hand-made PERSIST gives; shown as the latest date there is.
    const expiresAt = new Date(pttl < 0 ? LATEST_DATE_MS : now + pttl);
    const info: IdempotencyKeyInfo = {
      scope,
      key,
      state: found.state,
      claimId: claimIdOf(record.toString('latin1', 1, TTL_OFFSET)),
      claimedAt: null,
      finishedAt: null,
      leaseEndsAt: found.state === 'in_flight' ? new Date(expiresAt.getTime() - ttlMs) : null,
      expiresAt,
      status: found.state === 'completed' ? (found.response?.status ?? null) : found.status,
      fingerprintHash: fingerprintHashOf(found.fingerprint),
    };
    if (withResponse && found.response) {
      info.response = found.response;
    }
    return info;
  }

  async releaseKey(scope: string, key: string, claimId?: string): Promise<boolean> {
    const name = this.keyName(scope, key);
    let token = '';
    if (claimId !== undefined) {
      // Redis's Lua has no SHA-256: the token is read and matched here, then fenced in the script.
      const head = (await runCommand(this.client, {
        name: 'getrange',
        args: [name, 0, TTL_OFFSET - 1],
      })) as Buffer;
      token = head.toString('latin1', 1);
      if (token.length === 0 || claimIdOf(token) !== claimId) {
        return false;
      }
    }
    return (await runScript(this.client, FORCE_RELEASE_SCRIPT, name, [token])) === 1;
  }

  async deleteKey(scope: string, key: string): Promise<boolean> {
    const name = this.keyName(scope, key);
    return (await runCommand(this.client, { name: 'del', args: [name] })) === 1;
  }

  listInFlight(_scope: string, _query: InFlightQuery): Promise<IdempotencyKeyInfo[]> {
    return Promise.reject(
      new KeyListingUnsupportedError(
        'on Redis, key names are hashes of scope and key, and records keep neither. Keys in flight end with their lease; look one up by its key instead.',
      ),
    );
  }
}

import { Inject, Injectable, Optional } from '@nestjs/common';
import { IDEMPOTENCY_TRANSACTIONAL_STORE } from '../idempotency.module-definition';
import { moduleStores } from '../module-stores';
import { MAX_KEY_LENGTH } from '../protocol/idempotency-key';
import { IdempotencyStore } from '../store/idempotency-store';
import {
  type IdempotencyKeyAdmin,
  type IdempotencyKeyInfo,
  hasKeyAdmin,
} from '../store/key-admin.interface';

/** Most keys `listInFlight` returns at once. */
export const MAX_IN_FLIGHT_LIST = 1000;
/** Longest `olderThanMs`: ten years, well inside what a database's interval arithmetic takes. */
const MAX_OLDER_THAN_MS = 10 * 366 * 86_400_000;
/** A key as the store holds it: what a request sent, unquoted. */
const STORED_KEY = /^[\x20-\x7e]+$/;

/** Options of `IdempotencyAdmin.find`. */
export interface FindKeyOptions {
  /** Include the stored response (status, headers, body) of a completed key. Default: `false`. */
  withResponse?: boolean;
}

/** Options of `IdempotencyAdmin.release`. */
export interface ReleaseKeyOptions {
  /**
   * Free the key only while this claim (`IdempotencyKeyInfo.claimId`, from `find` or
   * `listInFlight`) still holds it: a retry that took the key over since is left alone.
   * Default: whichever claim holds it.
   */
  claimId?: string;
}

/** Options of `IdempotencyAdmin.listInFlight`. */
export interface ListInFlightOptions {
  /** Only keys claimed at least this long ago, in milliseconds. Default: 0 (all in flight). */
  olderThanMs?: number;
  /** At most this many, the oldest first; at most 1000. Default: 100. */
  limit?: number;
}

/**
 * Operates on keys by hand: look one up, free a key stuck in flight, delete one, list those in
 * flight for too long. Every call names the scope (the principal the keys belong to, as the
 * route's `scope` resolved it: `request.user.id` by default) and never reads or changes another
 * scope's keys. It works on each of the module's stores (`store`, then `transactionalStore`).
 *
 * It is a service for your own code: guard whatever exposes it (a controller, a CLI) as an
 * administrator's tool. Releasing or deleting a key lets its next request run the handler again.
 *
 * @example
 * ```ts
 * @Controller('admin/idempotency-keys')
 * @UseGuards(AdminGuard)
 * export class KeysController {
 *   constructor(private readonly admin: IdempotencyAdmin) {}
 *
 *   // Query parameters, not path segments: the anonymous scope is ''.
 *   @Post('release')
 *   release(@Query('scope') scope: string, @Query('key') key: string) {
 *     return this.admin.release(scope, key);
 *   }
 * }
 * ```
 */
@Injectable()
export class IdempotencyAdmin {
  private readonly stores: IdempotencyStore[];

  constructor(
    store: IdempotencyStore,
    @Optional()
    @Inject(IDEMPOTENCY_TRANSACTIONAL_STORE)
    transactionalStore?: IdempotencyStore | null,
  ) {
    this.stores = moduleStores(store, transactionalStore);
  }

  /** The live key of `scope`, or `null` when no store holds it (or it has expired). */
  async find(
    scope: string,
    key: string,
    options: FindKeyOptions = {},
  ): Promise<IdempotencyKeyInfo | null> {
    const valid = validKey(key);
    for (const store of this.admins()) {
      const found = await store.findKey(validScope(scope), valid, options.withResponse ?? false);
      if (found) {
        return found;
      }
    }
    return null;
  }

  /**
   * Frees a key in flight (its handler crashed, or hangs), so that the next request with it runs;
   * the claim that held it can no longer store its response. Returns whether a key was freed: a
   * finished key is left alone (`delete` removes it). Give the `claimId` you saw, or a retry that
   * took the key over meanwhile is freed instead, and runs alongside the next request. A
   * transactional route's key in flight is not visible until its transaction commits: ending
   * that transaction frees it.
   */
  async release(scope: string, key: string, options: ReleaseKeyOptions = {}): Promise<boolean> {
    const valid = validKey(key);
    const { claimId } = options;
    if (claimId !== undefined && (typeof claimId !== 'string' || !/^[0-9a-f]{64}$/.test(claimId))) {
      throw new RangeError('nestjs-idempotency: claimId must be a claimId as find() gives it.');
    }
    let released = false;
    for (const store of this.admins()) {
      released = (await store.releaseKey(validScope(scope), valid, claimId)) || released;
    }
    return released;
  }

  /**
   * Deletes a key in any state: its next request runs the handler again, even if it ran before.
   * Returns whether there was one.
   */
  async delete(scope: string, key: string): Promise<boolean> {
    const valid = validKey(key);
    let deleted = false;
    for (const store of this.admins()) {
      deleted = (await store.deleteKey(validScope(scope), valid)) || deleted;
    }
    return deleted;
  }

  /**
   * The keys of `scope` in flight for at least `olderThanMs`, the oldest first. The Redis store
   * cannot list keys (their names are hashes, and records keep neither key nor scope): it rejects
   * with `KeyListingUnsupportedError`.
   */
  async listInFlight(
    scope: string,
    options: ListInFlightOptions = {},
  ): Promise<IdempotencyKeyInfo[]> {
    const olderThanMs = options.olderThanMs ?? 0;
    const limit = options.limit ?? 100;
    if (
      typeof olderThanMs !== 'number' ||
      !(olderThanMs >= 0 && olderThanMs <= MAX_OLDER_THAN_MS)
    ) {
      throw new RangeError(
        `nestjs-idempotency: olderThanMs must be from 0 to ${MAX_OLDER_THAN_MS}, got ${String(olderThanMs)}.`,
      );
    }
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_IN_FLIGHT_LIST) {
      throw new RangeError(
        `nestjs-idempotency: limit must be a whole number from 1 to ${MAX_IN_FLIGHT_LIST}, got ${String(limit)}.`,
      );
    }
    const lists = [];
    for (const store of this.admins()) {
      lists.push(await store.listInFlight(validScope(scope), { olderThanMs, limit }));
    }
    return lists
      .flat()
      .sort((a, b) => (a.claimedAt?.getTime() ?? 0) - (b.claimedAt?.getTime() ?? 0))
      .slice(0, limit);
  }

  private admins(): IdempotencyKeyAdmin[] {
    return this.stores.map((store) => {
      if (!hasKeyAdmin(store)) {
        throw new Error(
          `nestjs-idempotency: the store ${store.constructor.name} does not offer key administration (IdempotencyKeyAdmin).`,
        );
      }
      return store;
    });
  }
}

/**
 * A key as the store holds it: 1 to 255 printable ASCII characters, exactly as a request's header
 * gave it once unquoted (so spaces and quotes inside are part of it). Anything else names no key.
 */
function validKey(key: unknown): string {
  if (typeof key !== 'string' || key.length > MAX_KEY_LENGTH || !STORED_KEY.test(key)) {
    throw new RangeError(
      `nestjs-idempotency: not an idempotency key (1-${MAX_KEY_LENGTH} printable ASCII characters): ${JSON.stringify(typeof key === 'string' ? key.slice(0, 300) : typeof key)}.`,
    );
  }
  return key;
}

function validScope(scope: unknown): string {
  if (typeof scope !== 'string') {
    throw new RangeError(`nestjs-idempotency: a scope is a string, got ${typeof scope}.`);
  }
  return scope;
}

import { randomUUID } from 'node:crypto';
import { type ExistingKey, decideExistingKey } from '../protocol/claim-decision';
import type { ClaimHandle, ClaimRequest, ClaimResult } from '../store/claim-result.interface';
import type {
  IdempotencyHealthQuery,
  IdempotencyStoreHealth,
} from '../store/idempotency-store-health.interface';
import { IdempotencyStore } from '../store/idempotency-store';
import {
  type IdempotencyKeyAdmin,
  type IdempotencyKeyInfo,
  type InFlightQuery,
  claimIdOf,
  fingerprintHashOf,
} from '../store/key-admin.interface';
import type { IdempotencyRecoveryPoints, RecordedStep } from '../store/recovery-points.interface';
import type { StoredResponse } from '../store/stored-response.interface';

/** Options of {@link InMemoryIdempotencyStore}. */
export interface InMemoryIdempotencyStoreOptions {
  /**
   * The store's clock, in epoch milliseconds: leases and TTLs are measured against it. Pass a
   * clock of your own to move time in tests instead of waiting. Default: `Date.now`.
   */
  now?: () => number;
}

/** One key as the store keeps it (the PostgreSQL store's row, minus what nothing reads). */
interface MemoryRecord {
  fingerprint: string | null;
  state: ExistingKey['state'];
  token: string;
  /** When the current claim was made. */
  claimedAt: number;
  /** When the key finished; `null` while in flight. */
  finishedAt: number | null;
  /** End of the in-flight lease; `null` once the key has finished. */
  lockedUntil: number | null;
  status: number | null;
  response: StoredResponse | null;
  expiresAt: number;
  /** The steps claims of the key finished, in order (recovery points). */
  steps: RecordedStep[];
}

/** What the PostgreSQL store answers when a key keeps changing under its claim attempts. */
const UNSETTLED_RETRY_AFTER_MS = 1000;

/**
 * An `IdempotencyStore` in process memory, for unit and end-to-end tests without a database. It
 * keeps the PostgreSQL store's contract and timing: an atomic claim, leases taken over once they
 * end (by the same request only), writes fenced by the claim's token, finished keys kept for
 * `ttlMs`, expired keys new again whether or not purged, and a batched purge.
 *
 * Atomicity comes from JavaScript's single thread: every method reads and writes a key without
 * awaiting in between. It follows that the store is shared by one process only, and keeps
 * everything until purged or {@link InMemoryIdempotencyStore.clear | cleared}: it is not for
 * production. It runs lease mode only; routes with `transactional: true` need a store that
 * opens database transactions (`TransactionalIdempotencyStore`), and refuse to run on this one.
 *
 * @example
 * ```ts
 * const store = new InMemoryIdempotencyStore();
 * const moduleRef = await Test.createTestingModule({
 *   imports: [IdempotencyModule.forRoot({ store })],
 *   controllers: [PaymentsController],
 * }).compile();
 * ```
 */
export class InMemoryIdempotencyStore
  extends IdempotencyStore
  implements IdempotencyKeyAdmin, IdempotencyRecoveryPoints
{
  /** Records by scope, then by key: no separator to collide with what a scope contains. */
  private readonly scopes = new Map<string, Map<string, MemoryRecord>>();
  private readonly now: () => number;

  constructor(options: InMemoryIdempotencyStoreOptions = {}) {
    super();
    this.now = options.now ?? Date.now;
  }

  /** How many keys the store holds, expired ones not yet purged included. */
  get size(): number {
    let size = 0;
    for (const records of this.scopes.values()) {
      size += records.size;
    }
    return size;
  }

  /** Forgets every key, for a clean store between tests. */
  clear(): void {
    this.scopes.clear();
  }

  claim(request: ClaimRequest): Promise<ClaimResult> {
    const now = this.now();
    const existing = this.read(request.scope, request.key);
    if (existing && !claimable(existing, request.fingerprint, now)) {
      const decision = decideExistingKey(
        {
          state: existing.state,
          fingerprint: existing.fingerprint,
          leaseLeftMs: existing.lockedUntil === null ? 0 : Math.ceil(existing.lockedUntil - now),
          status: existing.status,
          response: existing.response && copyResponse(existing.response),
        },
        request.fingerprint,
      );
      // `retry` is a lease that ended under another fingerprint (one of the two null): nothing
      // here will change it, so answer as the PostgreSQL store does after its attempts.
      return Promise.resolve(
        decision.kind === 'retry'
          ? { kind: 'in-flight', retryAfterMs: UNSETTLED_RETRY_AFTER_MS }
          : decision,
      );
    }
    const token = randomUUID();
    // A lease taken over keeps the steps its claims finished; an expired key starts anew.
    const steps = existing && existing.expiresAt > now ? existing.steps : [];
    this.write(request.scope, request.key, {
      fingerprint: request.fingerprint,
      state: 'in_flight',
      token,
      claimedAt: now,
      finishedAt: null,
      lockedUntil: now + request.lockTimeoutMs,
      status: null,
      response: null,
      // An abandoned claim stays until its lease has ended and a TTL after that.
      expiresAt: now + request.lockTimeoutMs + request.ttlMs,
      steps,
    });
    return Promise.resolve({
      kind: 'claimed',
      handle: { scope: request.scope, key: request.key, token },
      steps: steps.map((step) => ({ ...step })),
    });
  }

  complete(handle: ClaimHandle, response: StoredResponse, ttlMs: number): Promise<boolean> {
    const record = this.current(handle);
    if (!record || record.state !== 'in_flight') {
      return Promise.resolve(false);
    }
    const now = this.now();
    record.state = 'completed';
    record.finishedAt = now;
    record.lockedUntil = null;
    record.status = response.status;
    record.response = copyResponse(response);
    record.expiresAt = now + ttlMs;
    return Promise.resolve(true);
  }

  markNotReplayable(handle: ClaimHandle, status: number | null, ttlMs: number): Promise<boolean> {
    const record = this.current(handle);
    // A key is marked before a handler that writes its own response runs, and again once its
    // status is known: only a completed key is final.
    if (!record || record.state === 'completed') {
      return Promise.resolve(false);
    }
    const now = this.now();
    record.state = 'not_replayable';
    record.finishedAt = now;
    record.lockedUntil = null;
    record.status = status;
    record.expiresAt = now + ttlMs;
    return Promise.resolve(true);
  }

  release(handle: ClaimHandle): Promise<boolean> {
    const record = this.current(handle);
    if (!record || record.state === 'completed') {
      return Promise.resolve(false);
    }
    if (record.state === 'in_flight' && record.steps.length > 0) {
      // Its steps have run: only the same request may take the key over, and resume after them.
      // A new token fences off whatever of the released claim still lands (a late step).
      record.lockedUntil = Math.min(record.lockedUntil ?? Infinity, this.now());
      record.token = randomUUID();
      return Promise.resolve(true);
    }
    return Promise.resolve(this.remove(handle.scope, handle.key));
  }

  /**
   * Adds a finished step to the claim's record and renews its lease (see
   * `IdempotencyRecoveryPoints`).
   */
  saveStep(
    handle: ClaimHandle,
    index: number,
    step: RecordedStep,
    leaseMs: number,
  ): Promise<boolean> {
    const record = this.current(handle);
    if (record?.state !== 'in_flight' || record.steps.length !== index) {
      return Promise.resolve(false);
    }
    record.steps.push({ name: step.name, result: step.result });
    const lockedUntil = this.now() + leaseMs;
    record.expiresAt += lockedUntil - (record.lockedUntil ?? lockedUntil);
    record.lockedUntil = lockedUntil;
    return Promise.resolve(true);
  }

  /** A live key (see `IdempotencyAdmin.find`). */
  findKey(scope: string, key: string, withResponse: boolean): Promise<IdempotencyKeyInfo | null> {
    const record = this.live(scope, key);
    return Promise.resolve(record ? keyInfo(scope, key, record, withResponse) : null);
  }

  /** Deletes a key while it is in flight (see `IdempotencyAdmin.release`). */
  releaseKey(scope: string, key: string, claimId?: string): Promise<boolean> {
    const record = this.live(scope, key);
    return Promise.resolve(
      record?.state === 'in_flight' &&
        (claimId === undefined || claimIdOf(record.token) === claimId) &&
        this.remove(scope, key),
    );
  }

  /** Deletes a live key (see `IdempotencyAdmin.delete`). */
  deleteKey(scope: string, key: string): Promise<boolean> {
    return Promise.resolve(this.live(scope, key) !== undefined && this.remove(scope, key));
  }

  /** A scope's keys in flight, the oldest first (see `IdempotencyAdmin.listInFlight`). */
  listInFlight(scope: string, query: InFlightQuery): Promise<IdempotencyKeyInfo[]> {
    const now = this.now();
    const found: IdempotencyKeyInfo[] = [];
    for (const [key, record] of this.scopes.get(scope) ?? []) {
      if (
        record.state === 'in_flight' &&
        record.expiresAt > now &&
        record.claimedAt <= now - query.olderThanMs
      ) {
        found.push(keyInfo(scope, key, record, false));
      }
    }
    return Promise.resolve(
      found
        .sort((a, b) => (a.claimedAt?.getTime() ?? 0) - (b.claimedAt?.getTime() ?? 0))
        .slice(0, query.limit),
    );
  }

  /** Deletes up to `batchSize` expired keys, those that expired first first. */
  purgeExpired(batchSize: number): Promise<number> {
    const now = this.now();
    const expired: { scope: string; key: string; expiresAt: number }[] = [];
    for (const [scope, records] of this.scopes) {
      for (const [key, record] of records) {
        if (record.expiresAt <= now) {
          expired.push({ scope, key, expiresAt: record.expiresAt });
        }
      }
    }
    expired.sort((a, b) => a.expiresAt - b.expiresAt);
    const batch = expired.slice(0, Math.max(0, batchSize));
    for (const { scope, key } of batch) {
      this.remove(scope, key);
    }
    return Promise.resolve(batch.length);
  }

  private live(scope: string, key: string): MemoryRecord | undefined {
    const record = this.read(scope, key);
    return record && record.expiresAt > this.now() ? record : undefined;
  }

  private remove(scope: string, key: string): true {
    const records = this.scopes.get(scope);
    records?.delete(key);
    if (records?.size === 0) {
      this.scopes.delete(scope);
    }
    return true;
  }

  /**
   * The expired keys not purged yet (up to `purgeBacklogLimit`) and, when asked, the age of the
   * oldest unexpired key in flight, on the store's clock. Always answers: there is no backend.
   */
  override health(query: IdempotencyHealthQuery): Promise<IdempotencyStoreHealth> {
    const now = this.now();
    let expired = 0;
    let oldestClaim: number | null = null;
    for (const records of this.scopes.values()) {
      for (const record of records.values()) {
        if (record.expiresAt <= now) {
          expired++;
        } else if (record.state === 'in_flight') {
          oldestClaim = Math.min(oldestClaim ?? record.claimedAt, record.claimedAt);
        }
      }
    }
    const limit = query.purgeBacklogLimit;
    const health: IdempotencyStoreHealth = {
      kind: 'in-memory',
      purgeBacklog: Math.min(expired, limit),
      purgeBacklogCapped: expired >= limit,
    };
    if (query.oldestInFlight) {
      health.oldestInFlightAgeMs = oldestClaim === null ? null : now - oldestClaim;
    }
    return Promise.resolve(health);
  }

  private read(scope: string, key: string): MemoryRecord | undefined {
    return this.scopes.get(scope)?.get(key);
  }

  private write(scope: string, key: string, record: MemoryRecord): void {
    let records = this.scopes.get(scope);
    if (!records) {
      records = new Map();
      this.scopes.set(scope, records);
    }
    records.set(key, record);
  }

  /** The handle's record, when its claim is still the key's current one. */
  private current(handle: ClaimHandle): MemoryRecord | undefined {
    const record = this.read(handle.scope, handle.key);
    return record?.token === handle.token ? record : undefined;
  }
}

/**
 * Whether a claim may take the key: it has expired, or its lease ended and the claim repeats the
 * same request (a different one is told so instead of taking the key over). As the PostgreSQL
 * store's `CLAIMABLE`, where a `null` fingerprint matches only `null`.
 */
function claimable(record: MemoryRecord, fingerprint: string | null, now: number): boolean {
  return (
    record.expiresAt <= now ||
    (record.state === 'in_flight' &&
      record.lockedUntil !== null &&
      record.lockedUntil <= now &&
      record.fingerprint === fingerprint)
  );
}

/** A copy that shares no bytes or header object with the caller's, in either direction. */
function copyResponse(response: StoredResponse): StoredResponse {
  return {
    status: response.status,
    headers: { ...response.headers },
    body: response.body === null ? null : Buffer.from(response.body),
  };
}

function keyInfo(
  scope: string,
  key: string,
  record: MemoryRecord,
  withResponse: boolean,
): IdempotencyKeyInfo {
  const info: IdempotencyKeyInfo = {
    scope,
    key,
    state: record.state,
    claimId: claimIdOf(record.token),
    claimedAt: new Date(record.claimedAt),
    finishedAt: record.finishedAt === null ? null : new Date(record.finishedAt),
    leaseEndsAt: record.lockedUntil === null ? null : new Date(record.lockedUntil),
    expiresAt: new Date(record.expiresAt),
    status: record.status,
    fingerprintHash: fingerprintHashOf(record.fingerprint),
  };
  if (withResponse && record.response) {
    info.response = copyResponse(record.response);
  }
  return info;
}

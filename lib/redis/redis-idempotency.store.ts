import { randomUUID } from 'node:crypto';
import { Logger } from '@nestjs/common';
import type { Cluster, Redis } from 'ioredis';
import { positiveOption } from '../idempotency-options.defaults';
import { decideExistingKey } from '../protocol/claim-decision';
import type { ClaimHandle, ClaimRequest, ClaimResult } from '../store/claim-result.interface';
import { IdempotencyStore } from '../store/idempotency-store';
import type {
  IdempotencyKeyAdmin,
  IdempotencyKeyInfo,
  InFlightQuery,
} from '../store/key-admin.interface';
import type { IdempotencyStoreHealth } from '../store/idempotency-store-health.interface';
import type { IdempotencyRecoveryPoints, RecordedStep } from '../store/recovery-points.interface';
import type { StoredResponse } from '../store/stored-response.interface';
import { assertFailsClosed, assertServerVersion, whenReady } from './redis-client';
import { redisKeyName } from './redis-key';
import { RedisKeyAdmin } from './redis-key-admin';
import {
  completedTail,
  existingKey,
  inFlightRecord,
  isInFlight,
  notReplayableTail,
  recordedSteps,
  stepEntry,
} from './redis-record';
import {
  RedisReplicationError,
  type ScriptArgument,
  runCommand,
  runScript,
} from './redis-script-runner';
import {
  COMPLETE_SCRIPT,
  MARK_NOT_REPLAYABLE_SCRIPT,
  RELEASE_SCRIPT,
  type RedisScript,
  SAVE_STEP_SCRIPT,
  TAKEOVER_SCRIPT,
} from './redis-scripts';
import {
  REDIS_STORE_DEFAULTS,
  type RedisDurabilityOptions,
  type RedisIdempotencyStoreOptions,
  resolveDurability,
} from './redis-store.options';

/** What the PostgreSQL store answers when a key keeps changing under its claim attempts. */
const UNSETTLED_RETRY_AFTER_MS = 1000;

/** A takeover script's reply when it took the key: 1, and the steps it took over. */
type TakenOver = [1, Buffer];
const tookOver = (reply: unknown): reply is TakenOver => Array.isArray(reply) && reply[0] === 1;
/** A claim wrote the key: its `SET NX` found nothing (null), or its takeover script took it. */
const wroteClaim = (reply: unknown): boolean => reply === null || tookOver(reply);
/** A fenced script changed the key. */
const wroteScript = (reply: unknown): boolean => reply === 1;

/**
 * An `IdempotencyStore` on Redis (standalone, Sentinel or Cluster) through ioredis, in lease mode
 * (routes with `transactional: true` need the PostgreSQL store).
 *
 * Each key is one Redis string, named from a hash of its scope and key, and every operation is
 * atomic on that one key: a claim's `SET NX GET` writes a new key or reads what is there in one
 * command (new, replay, mismatch); a key in flight is judged by a script (the lease left measured
 * on Redis's clock) that takes an ended lease over with a new token in the same step; completion,
 * marking and release are scripts that change the key only under the current claim's token. Keys
 * expire by Redis's own expiry (in flight: lease + TTL; finished: TTL after finishing), so there
 * is nothing to purge.
 *
 * The client is borrowed: the store never closes it. It must fail closed (no offline queue, a
 * command timeout; checked in `prepare()`): make it with `createRedisClient()`, or let
 * `redisStore()` create and close one.
 *
 * @example
 * ```ts
 * const client = createRedisClient({ url: process.env.REDIS_URL });
 * IdempotencyModule.forRoot({ store: new RedisIdempotencyStore(client) });
 * ```
 */
export class RedisIdempotencyStore
  extends IdempotencyStore
  implements IdempotencyKeyAdmin, IdempotencyRecoveryPoints
{
  private readonly logger = new Logger('RedisIdempotencyStore');
  private readonly keyPrefix: string;
  private readonly durability: RedisDurabilityOptions | undefined;
  private readonly readyTimeoutMs: number;
  private readonly keyAdmin: RedisKeyAdmin;
  /** Each handle `claim()` gave out, with the key name it hashed for it. */
  private readonly claimedNames = new WeakMap<
    ClaimHandle,
    { scope: string; key: string; name: string }
  >();

  constructor(
    private readonly client: Redis | Cluster,
    options: RedisIdempotencyStoreOptions = {},
  ) {
    super();
    this.keyPrefix = options.keyPrefix ?? REDIS_STORE_DEFAULTS.keyPrefix;
    this.durability = resolveDurability(options.durability);
    this.readyTimeoutMs = positiveOption(
      options.readyTimeoutMs,
      REDIS_STORE_DEFAULTS.readyTimeoutMs,
      'readyTimeoutMs',
    );
    this.keyAdmin = new RedisKeyAdmin(client, (scope, key) => this.keyName({ scope, key }));
  }

  /**
   * Checks that the client fails closed, and waits until it is ready (a command sent before then
   * would fail): at most `readyTimeoutMs`, after which the application's start-up fails. Then
   * checks that no server it writes to reports a Redis older than 7.0.
   */
  override async prepare(): Promise<void> {
    assertFailsClosed(this.client);
    await whenReady(this.client, this.readyTimeoutMs);
    await assertServerVersion(this.client, this.readyTimeoutMs, (message) =>
      this.logger.warn(message),
    );
  }

  /**
   * Claims the key with one `SET NX PX GET`: it writes the key if it was free, or answers with the
   * record there. A key in flight takes a second step, a script that judges its lease on Redis's
   * clock and takes it over once ended. A failed call releases what it may have claimed. Throws
   * when Redis fails or (with `durability`) the replicas do not confirm.
   */
  async claim(request: ClaimRequest): Promise<ClaimResult> {
    const token = randomUUID();
    const name = this.keyName(request);
    const { fingerprint } = request;
    const record = inFlightRecord(token, Math.ceil(request.ttlMs), fingerprint);
    const expiryMs = Math.ceil(request.lockTimeoutMs) + Math.ceil(request.ttlMs);
    let found: Buffer | null;
    let leaseLeftMs = 0;
    let steps: RecordedStep[] = [];
    try {
      found = (await runCommand(
        this.client,
        { name: 'set', args: [name, record, 'PX', expiryMs, 'NX', 'GET'] },
        this.durability,
        wroteClaim,
      )) as Buffer | null;
      if (found !== null && isInFlight(found)) {
        const reply = await this.run(TAKEOVER_SCRIPT, name, [record, expiryMs], wroteClaim);
        if (tookOver(reply)) {
          found = null;
          steps = recordedSteps(reply[1]);
        } else {
          [found, leaseLeftMs] = reply as [Buffer, number];
        }
      }
    } catch (error) {
      // The claim may have run without its answer reaching us, or may run later from a frozen
      // server's buffers; nobody holds its token. Its release, sent behind it on the same
      // connection, undoes it in either case. A claim the replicas did not confirm ran on a
      // server that answers: its release is awaited, so that a retry finds the key free.
      const release = this.run(RELEASE_SCRIPT, name, [token, randomUUID()]).catch(() => undefined);
      if (error instanceof RedisReplicationError) {
        await release;
      }
      throw error;
    }
    if (found === null) {
      const handle = { scope: request.scope, key: request.key, token };
      this.claimedNames.set(handle, { scope: handle.scope, key: handle.key, name });
      return { kind: 'claimed', handle, steps };
    }
    const decision = decideExistingKey(existingKey(found, leaseLeftMs, fingerprint), fingerprint);
    // `retry`: a lease that ended under another fingerprint (one of the two null), which only its
    // holder's writes or expiry will change.
    return decision.kind === 'retry'
      ? { kind: 'in-flight', retryAfterMs: UNSETTLED_RETRY_AFTER_MS }
      : decision;
  }

  /** Stores the response under the claim's token; the key then expires `ttlMs` from now. */
  async complete(handle: ClaimHandle, response: StoredResponse, ttlMs: number): Promise<boolean> {
    return this.write(COMPLETE_SCRIPT, handle, [
      handle.token,
      Math.ceil(ttlMs),
      completedTail(response),
      response.body ?? '',
    ]);
  }

  /** Marks the key not replayable under the claim's token; it expires `ttlMs` from now. */
  async markNotReplayable(
    handle: ClaimHandle,
    status: number | null,
    ttlMs: number,
  ): Promise<boolean> {
    return this.write(MARK_NOT_REPLAYABLE_SCRIPT, handle, [
      handle.token,
      Math.ceil(ttlMs),
      notReplayableTail(status),
    ]);
  }

  /**
   * Deletes the key under the claim's token, unless it completed; a key in flight with steps is
   * kept for the same request, under a new token (see `IdempotencyRecoveryPoints`).
   */
  async release(handle: ClaimHandle): Promise<boolean> {
    const args = [handle.token, randomUUID()];
    return this.run(RELEASE_SCRIPT, this.handleKeyName(handle), args).then(wroteScript);
  }

  /**
   * Adds a step to the key's record under the claim's token, when it holds exactly `index`
   * steps, and renews the lease (see `IdempotencyRecoveryPoints`); with `durability`, confirmed
   * by the replicas like a completion.
   */
  async saveStep(
    handle: ClaimHandle,
    index: number,
    step: RecordedStep,
    leaseMs: number,
  ): Promise<boolean> {
    return this.write(SAVE_STEP_SCRIPT, handle, [
      handle.token,
      index,
      stepEntry(step),
      Math.ceil(leaseMs),
    ]);
  }

  /** Redis expires keys itself: nothing is left to purge. Always 0. */
  purgeExpired(_batchSize: number): Promise<number> {
    return Promise.resolve(0);
  }

  /** A key's record (see `IdempotencyAdmin.find`); Redis keeps no claim or finish time. */
  findKey(scope: string, key: string, withResponse: boolean): Promise<IdempotencyKeyInfo | null> {
    return this.keyAdmin.findKey(scope, key, withResponse);
  }

  /** Deletes a key while it is in flight (see `IdempotencyAdmin.release`). */
  releaseKey(scope: string, key: string, claimId?: string): Promise<boolean> {
    return this.keyAdmin.releaseKey(scope, key, claimId);
  }

  /** Deletes a key (see `IdempotencyAdmin.delete`). */
  deleteKey(scope: string, key: string): Promise<boolean> {
    return this.keyAdmin.deleteKey(scope, key);
  }

  /** Always rejects: Redis key names are hashes, and records keep neither key nor scope. */
  listInFlight(scope: string, query: InFlightQuery): Promise<IdempotencyKeyInfo[]> {
    return this.keyAdmin.listInFlight(scope, query);
  }

  /** One key-less `PING` through the client. Keys expire by themselves: no backlog to report. */
  override async health(): Promise<IdempotencyStoreHealth> {
    await this.client.ping();
    return { kind: 'redis' };
  }

  private write(
    script: RedisScript,
    handle: ClaimHandle,
    args: ScriptArgument[],
  ): Promise<boolean> {
    return this.run(script, this.handleKeyName(handle), args, wroteScript).then(wroteScript);
  }

  /**
   * Runs `script` on the key `name`. With `wrote`, the write must reach the replicas that
   * `durability` asks for; without it (a release), the primary is enough: a lost release only
   * keeps the key until its lease ends.
   */
  private run(
    script: RedisScript,
    name: string,
    args: ScriptArgument[],
    wrote?: (reply: unknown) => boolean,
  ): Promise<unknown> {
    const durability = wrote ? this.durability : undefined;
    return runScript(this.client, script, name, args, durability, wrote);
  }

  private keyName({ scope, key }: { scope: string; key: string }): string {
    return redisKeyName(this.keyPrefix, scope, key);
  }

  /**
   * The name of a handle's key: the one its claim hashed, while the handle still names that key,
   * so that completing or releasing it needs no second hash.
   */
  private handleKeyName(handle: ClaimHandle): string {
    const claimed = this.claimedNames.get(handle);
    return claimed !== undefined && claimed.scope === handle.scope && claimed.key === handle.key
      ? claimed.name
      : this.keyName(handle);
  }
}

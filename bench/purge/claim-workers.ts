import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ClaimRequest } from '../../lib/store/claim-result.interface';
import type { PostgresIdempotencyStore } from '../../lib/postgres/typeorm/postgres-idempotency.store';
import type { StoredResponse } from '../../lib/store/stored-response.interface';
import type { FilledKey } from './purge-fill';

/**
 * `new`: claim of a new key; `replay`: claim of a live finished key; `complete`: completion of a
 * new key's claim; `front`: claim of an expired key at the head of the purge order (see
 * FrontProbe), the one kind of claim that can meet a purge batch on the same row.
 */
export type ClaimKind = 'new' | 'replay' | 'complete' | 'front';

/** One timed store call. Times are `performance.now()` milliseconds. */
export interface ClaimSample {
  kind: ClaimKind;
  startMs: number;
  endMs: number;
  /** `unexpected`: a result other than the one this kind must get (e.g. a replay that claimed). */
  result: 'ok' | 'unexpected' | 'error';
}

/** The lease and TTL of every claim: a route's defaults. */
export const LEASE_MS = 60_000;
export const TTL_MS = 86_400_000;

const RESPONSE: StoredResponse = {
  status: 201,
  headers: { 'content-type': 'application/json; charset=utf-8' },
  body: Buffer.from('{"id":"00000000-0000-0000-0000-000000000000","status":"succeeded"}'),
};

/** Samples shared by all the load of a phase, and the keys that became live during it. */
export class ClaimRecorder {
  readonly samples: ClaimSample[] = [];
  /** Claims that got a key (new or expired): each left one live row, completed or not. */
  claimedKeys = 0;

  /** Times `call` and records it as `kind`; returns its result, or `undefined` after an error. */
  async time<T>(kind: ClaimKind, call: () => Promise<T>, ok: (result: T) => boolean) {
    const startMs = performance.now();
    try {
      const result = await call();
      this.samples.push({
        kind,
        startMs,
        endMs: performance.now(),
        result: ok(result) ? 'ok' : 'unexpected',
      });
      return result;
    } catch {
      this.samples.push({ kind, startMs, endMs: performance.now(), result: 'error' });
      return undefined;
    }
  }

  /** Claims `request` (which must be free or expired) and completes it, timing both. */
  async claimAndComplete(
    store: PostgresIdempotencyStore,
    kind: 'new' | 'front',
    request: ClaimRequest,
  ): Promise<void> {
    const claim = await this.time(
      kind,
      () => store.claim(request),
      (r) => r.kind === 'claimed',
    );
    if (claim?.kind !== 'claimed') {
      return;
    }
    this.claimedKeys++;
    await this.time(
      'complete',
      () => store.complete(claim.handle, RESPONSE, TTL_MS),
      (completed) => completed,
    );
  }
}

/**
 * `workers` loops of claims through the store's pool: a new key claimed and completed, or, with
 * probability `replayShare`, a replay of one of `replayKeys`. With `rate` > 0 each loop paces
 * itself to its share of that rate; otherwise they run back to back.
 */
export class ClaimWorkers {
  private stopping = false;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly store: PostgresIdempotencyStore,
    private readonly recorder: ClaimRecorder,
    private readonly plan: {
      workers: number;
      rate: number;
      replayShare: number;
      replayKeys: readonly FilledKey[];
    },
  ) {}

  start(): void {
    this.loops = Array.from({ length: this.plan.workers }, () => this.loop());
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
  }

  private async loop(): Promise<void> {
    const intervalMs = this.plan.rate > 0 ? (1000 * this.plan.workers) / this.plan.rate : 0;
    let next = performance.now() + Math.random() * intervalMs;
    while (!this.stopping) {
      if (intervalMs > 0) {
        await sleep(Math.max(0, next - performance.now()));
        next += intervalMs;
      }
      if (Math.random() < this.plan.replayShare) {
        await this.replay();
      } else {
        const key = randomUUID();
        await this.recorder.claimAndComplete(this.store, 'new', {
          scope: `client-${Math.floor(Math.random() * 5000)}`,
          key,
          fingerprint: key,
          lockTimeoutMs: LEASE_MS,
          ttlMs: TTL_MS,
        });
      }
    }
  }

  private async replay(): Promise<void> {
    const keys = this.plan.replayKeys;
    const { scope, key, fingerprint } = keys[Math.floor(Math.random() * keys.length)];
    await this.recorder.time(
      'replay',
      () => this.store.claim({ scope, key, fingerprint, lockTimeoutMs: LEASE_MS, ttlMs: TTL_MS }),
      (result) => result.kind === 'replay',
    );
  }
}

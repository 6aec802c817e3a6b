import { performance } from 'node:perf_hooks';
import type { ResolvedStepsSettings } from '../idempotency-options.defaults';
import {
  type IdempotencyException,
  IdempotencyKeyInFlightException,
  IdempotencyStepResultNotStorableException,
  IdempotencyStepsMismatchException,
} from '../idempotency.exceptions';
import type { ClaimHandle } from '../store/claim-result.interface';
import type { IdempotencyRecoveryPoints, RecordedStep } from '../store/recovery-points.interface';
import { deriveStepKey } from './step-key';

/** What a request's steps need of the execution that runs its handler. */
export interface StepsRun {
  handle: ClaimHandle;
  /** The steps earlier claims of the key finished, in order. */
  recorded: readonly RecordedStep[];
  store: IdempotencyRecoveryPoints;
  settings: ResolvedStepsSettings;
  /** The route's lease: each recorded step renews it for as long. */
  lockTimeoutMs: number;
  /** `performance.now()` before the claim was sent: its lease ends after that, never before. */
  claimSentAt: number;
  /** Bounds a store call (`storeTimeoutMs`). */
  bounded<T>(call: Promise<T>): Promise<T>;
  /** Prepares the response for `exception` (problem+json) and returns it, to throw. */
  problem(exception: IdempotencyException): IdempotencyException;
  /** Reports a failed store call and returns the 503 to throw. */
  storeUnavailable(error: unknown): IdempotencyException;
}

/** A step's result as stored: wrapped, so that `undefined` comes back as `undefined`. */
interface StoredResult {
  value?: unknown;
}

/**
 * The steps of one request: which one comes next, the results earlier attempts recorded, and the
 * rule that they form one fixed sequence.
 */
export class RequestSteps {
  private next = 0;
  private readonly names = new Set<string>();
  private running: string | undefined = undefined;
  /**
   * When the claim's lease ends at the earliest, on this process's clock (the lease runs on the
   * store's, from a moment after the call that set it was sent).
   */
  private leaseEndsBy: number;

  constructor(private readonly run: StepsRun) {
    this.leaseEndsBy = run.claimSentAt + run.lockTimeoutMs;
  }

  async step<T>(name: string, work: (stepKey: string) => T | Promise<T>): Promise<T> {
    const index = this.next;
    if (this.running !== undefined) {
      throw this.mismatch(`Step "${name}" started while step "${this.running}" was running.`);
    }
    if (this.names.has(name)) {
      throw this.mismatch(`Step "${name}" was asked for twice.`);
    }
    const recorded = this.run.recorded[index];
    if (recorded !== undefined && recorded.name !== name) {
      throw this.mismatch(
        `Step ${index + 1} is "${name}", where an earlier attempt with this key recorded "${recorded.name}".`,
      );
    }
    this.names.add(name);
    this.next++;
    if (recorded !== undefined) {
      return decode<T>(recorded.result);
    }
    if (performance.now() >= this.leaseEndsBy) {
      // Paused past its lease (a stalled process, a long step before): another request may own
      // the key by now, so this one starts no more steps.
      throw this.leaseLost();
    }
    this.running = name;
    try {
      const { handle, settings } = this.run;
      const result = await work(deriveStepKey(settings.keySecret, handle.scope, handle.key, name));
      const encoded = this.encode(name, result);
      let saved: boolean;
      const sentAt = performance.now();
      try {
        saved = await this.run.bounded(
          this.run.store.saveStep(handle, index, { name, result: encoded }, this.run.lockTimeoutMs),
        );
      } catch (error) {
        throw this.run.storeUnavailable(error);
      }
      if (!saved) {
        // The lease ended and another request took the key over: it carries on from here.
        throw this.leaseLost();
      }
      this.leaseEndsBy = sentAt + this.run.lockTimeoutMs;
      // The value a retry would get: what this attempt goes on with, too.
      return decode<T>(encoded);
    } finally {
      this.running = undefined;
    }
  }

  private encode(name: string, result: unknown): string {
    let encoded: string;
    try {
      encoded = JSON.stringify({ value: result } satisfies StoredResult);
    } catch (error) {
      throw this.run.problem(
        new IdempotencyStepResultNotStorableException(name, `is not JSON (${String(error)})`),
      );
    }
    const bytes = Buffer.byteLength(encoded);
    if (bytes > this.run.settings.maxResultBytes) {
      throw this.run.problem(
        new IdempotencyStepResultNotStorableException(
          name,
          `takes ${bytes} bytes as JSON, over steps.maxResultBytes (${this.run.settings.maxResultBytes})`,
        ),
      );
    }
    return encoded;
  }

  private leaseLost(): IdempotencyException {
    return this.run.problem(new IdempotencyKeyInFlightException(this.run.lockTimeoutMs));
  }

  private mismatch(reason: string): IdempotencyException {
    return this.run.problem(new IdempotencyStepsMismatchException(reason));
  }
}

function decode<T>(encoded: string): T {
  return (JSON.parse(encoded) as StoredResult).value as T;
}

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
  /** The route's lease, for the Retry-After of a claim taken over meanwhile. */
  lockTimeoutMs: number;
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

  constructor(private readonly run: StepsRun) {}

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
    this.running = name;
    try {
      const { handle, settings } = this.run;
      const result = await work(deriveStepKey(settings.keySecret, handle.scope, handle.key, name));
      const encoded = this.encode(name, result);
      let saved: boolean;
      try {
        saved = await this.run.bounded(
          this.run.store.saveStep(handle, index, { name, result: encoded }),
        );
      } catch (error) {
        throw this.run.storeUnavailable(error);
      }
      if (!saved) {
        // The lease ended and another request took the key over: it carries on from here.
        throw this.run.problem(new IdempotencyKeyInFlightException(this.run.lockTimeoutMs));
      }
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

  private mismatch(reason: string): IdempotencyException {
    return this.run.problem(new IdempotencyStepsMismatchException(reason));
  }
}

function decode<T>(encoded: string): T {
  return (JSON.parse(encoded) as StoredResult).value as T;
}

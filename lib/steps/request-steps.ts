import { performance } from 'node:perf_hooks';
import type { ResolvedStepsSettings } from '../idempotency-options.defaults';
import {
  type IdempotencyException,
  IdempotencyKeyInFlightException,
  IdempotencyStepResultNotStorableException,
  IdempotencyStepsMismatchException,
  IdempotencyStepsUnavailableException,
} from '../idempotency.exceptions';
import type { ClaimHandle } from '../store/claim-result.interface';
import type {
  IdempotencyRecoveryPoints,
  IdempotencyStepTransaction,
  IdempotencyStepTransactions,
  RecordedStep,
} from '../store/recovery-points.interface';
import { deriveStepKey } from './step-key';

/** What a request's steps need of the execution that runs its handler. */
export interface StepsRun {
  handle: ClaimHandle;
  /** The request's fingerprint; steps refuse to start without one (see `unavailable`). */
  fingerprint: string | null;
  /** The steps earlier claims of the key finished, in order. */
  recorded: readonly RecordedStep[];
  store: IdempotencyRecoveryPoints;
  /** The same store, when it can record a step in the transaction of its writes. */
  transactions: IdempotencyStepTransactions | null;
  settings: ResolvedStepsSettings;
  /** The route's lease: each recorded step renews it for as long. */
  lockTimeoutMs: number;
  /** `performance.now()` before the claim was sent: its lease ends after that, never before. */
  claimSentAt: number;
  /** Why this request's steps cannot be recorded, if they cannot: each step refuses to start. */
  unavailable: string | undefined;
  /** Bounds a store call (`storeTimeoutMs`). */
  bounded<T>(call: Promise<T>): Promise<T>;
  /** Logs a failed store call and returns the 503 to throw. */
  storeUnavailable(error: unknown): IdempotencyException;
}

/** A step's result as stored: wrapped, so that `undefined` comes back as `undefined`. */
interface StoredResult {
  value?: unknown;
}

/**
 * The steps of one request: which one comes next, the results earlier attempts recorded, and the
 * rule that they form one fixed sequence, run one at a time, within the claim's lease.
 */
export class RequestSteps {
  private next = 0;
  private readonly names = new Set<string>();
  /** The step whose work or recording is under way, and its end. */
  private running: { name: string; settled: Promise<unknown> } | undefined = undefined;
  /** Set once a step's recording failed (the record's state is unknown) or the handler ended. */
  private stopped: IdempotencyException | undefined = undefined;
  private readonly thrown = new WeakSet<object>();
  /**
   * When the claim's lease ends at the earliest, on this process's clock (the lease runs on the
   * store's, from a moment after the call that set it was sent).
   */
  private leaseEndsBy: number;

  constructor(private readonly run: StepsRun) {
    this.leaseEndsBy = run.claimSentAt + run.lockTimeoutMs;
  }

  step<T>(name: string, work: (stepKey: string) => T | Promise<T>): Promise<T> {
    return this.start(name, (index, stepKey) => this.runAndRecord(name, index, stepKey, work));
  }

  /** A step whose work and recording commit in one transaction (see `IdempotencySteps`). */
  stepInTransaction<T, TTx>(
    name: string,
    work: (transaction: TTx, stepKey: string) => T | Promise<T>,
  ): Promise<T> {
    const transactions = this.run.transactions;
    if (transactions === null) {
      return Promise.reject(
        this.owned(
          new IdempotencyStepsUnavailableException(
            `Step "${name}" asks for a transaction, and the store does not run steps in transactions.`,
          ),
        ),
      );
    }
    return this.start(name, (index, stepKey) =>
      this.runInTransactionAndRecord(name, index, stepKey, transactions, work),
    );
  }

  /** Starts step `name` as the next one, or answers its recorded result, or refuses it. */
  private start<T>(
    name: string,
    runAndRecord: (index: number, stepKey: string) => Promise<T>,
  ): Promise<T> {
    const refusal = this.refusal(name);
    if (refusal !== undefined) {
      return Promise.reject(this.owned(refusal));
    }
    const recorded = this.run.recorded[this.next];
    this.names.add(name);
    this.next++;
    if (recorded !== undefined) {
      return Promise.resolve(decode<T>(recorded.result));
    }
    const { handle, settings, fingerprint } = this.run;
    const stepKey = deriveStepKey(settings.keySecret, {
      scope: handle.scope,
      key: handle.key,
      fingerprint: fingerprint ?? '',
      step: name,
    });
    const settled = runAndRecord(this.next - 1, stepKey);
    this.running = { name, settled: settled.catch(() => undefined) };
    return settled.finally(() => {
      this.running = undefined;
    });
  }

  /**
   * Ends the steps as the handler has ended: none starts after this, and it resolves once the
   * step still under way (one the handler did not wait for) has ended too, so that the key is
   * not released while its work runs.
   */
  async close(): Promise<void> {
    this.stopped ??= new IdempotencyStepsMismatchException(
      'A step was asked for after the handler had ended.',
    );
    await this.running?.settled;
  }

  /** Whether `error` is one this request's steps threw (to be answered as problem+json). */
  threw(error: unknown): error is IdempotencyException {
    return typeof error === 'object' && error !== null && this.thrown.has(error);
  }

  /** Why step `name` may not start now, if it may not. */
  private refusal(name: string): IdempotencyException | undefined {
    if (this.run.unavailable !== undefined) {
      return new IdempotencyStepsUnavailableException(this.run.unavailable);
    }
    if (this.stopped !== undefined) {
      return this.stopped;
    }
    if (this.running !== undefined) {
      return new IdempotencyStepsMismatchException(
        `Step "${name}" started while step "${this.running.name}" was running.`,
      );
    }
    if (this.names.has(name)) {
      return new IdempotencyStepsMismatchException(`Step "${name}" was asked for twice.`);
    }
    const recorded = this.run.recorded[this.next];
    if (recorded !== undefined && recorded.name !== name) {
      return new IdempotencyStepsMismatchException(
        `Step ${this.next + 1} is "${name}", where an earlier attempt with this key recorded "${recorded.name}".`,
      );
    }
    if (recorded === undefined && performance.now() >= this.leaseEndsBy) {
      // Paused past its lease (a stalled process, a long step before): another request may own
      // the key by now, so this one starts no more steps.
      return this.leaseLost();
    }
    return undefined;
  }

  private async runAndRecord<T>(
    name: string,
    index: number,
    stepKey: string,
    work: (stepKey: string) => T | Promise<T>,
  ): Promise<T> {
    let encoded: string;
    try {
      encoded = this.encode(name, await work(stepKey));
    } catch (error) {
      this.notRecorded(name, index);
      throw error;
    }
    const { handle, lockTimeoutMs } = this.run;
    return this.recorded(encoded, () =>
      this.run.store.saveStep(handle, index, { name, result: encoded }, lockTimeoutMs),
    );
  }

  /**
   * Runs `work` in a transaction of the store's, and records its result in that transaction's
   * commit: the step's writes land with their recovery point, or neither does.
   */
  private async runInTransactionAndRecord<T, TTx>(
    name: string,
    index: number,
    stepKey: string,
    transactions: IdempotencyStepTransactions,
    work: (transaction: TTx, stepKey: string) => T | Promise<T>,
  ): Promise<T> {
    const opening = transactions.beginStepTransaction();
    let transaction: IdempotencyStepTransaction;
    try {
      transaction = await this.run.bounded(opening);
    } catch (error) {
      // A transaction that opens after the bound ran out is ended unused.
      opening.then((late) => late.rollback()).catch(() => undefined);
      this.notRecorded(name, index);
      throw this.owned(this.run.storeUnavailable(error));
    }
    let encoded: string;
    try {
      encoded = this.encode(name, await work(transaction.transaction as TTx, stepKey));
    } catch (error) {
      // Bounded like any store call: a database that stopped answering holds the request no longer.
      await this.run.bounded(transaction.rollback()).catch(() => undefined);
      this.notRecorded(name, index);
      throw error;
    }
    const { handle, lockTimeoutMs } = this.run;
    return this.recorded(encoded, () =>
      transaction.commitWithStep(handle, index, { name, result: encoded }, lockTimeoutMs),
    );
  }

  /**
   * Nothing of step `name` was recorded: it may be asked for again (a retry within the handler),
   * or another step may take its place.
   */
  private notRecorded(name: string, index: number): void {
    this.names.delete(name);
    this.next = index;
  }

  /** Records a step's `encoded` result with `save`, and answers it as a retry would get it. */
  private async recorded<T>(encoded: string, save: () => Promise<boolean>): Promise<T> {
    const sentAt = performance.now();
    let saved: boolean;
    try {
      saved = await this.run.bounded(save());
    } catch (error) {
      // The recording may still land: what the record holds is unknown, so no step follows.
      this.stopped = this.run.storeUnavailable(error);
      throw this.owned(this.stopped);
    }
    if (!saved) {
      // The lease ended and another request took the key over: it carries on from here.
      this.stopped = this.leaseLost();
      throw this.owned(this.stopped);
    }
    this.leaseEndsBy = sentAt + this.run.lockTimeoutMs;
    // The value a retry would get: what this attempt goes on with, too.
    return decode<T>(encoded);
  }

  private encode(name: string, result: unknown): string {
    let encoded: string;
    try {
      encoded = JSON.stringify({ value: result } satisfies StoredResult);
    } catch (error) {
      throw this.owned(
        new IdempotencyStepResultNotStorableException(name, `is not JSON (${String(error)})`),
      );
    }
    const bytes = Buffer.byteLength(encoded);
    if (bytes > this.run.settings.maxResultBytes) {
      throw this.owned(
        new IdempotencyStepResultNotStorableException(
          name,
          `takes ${bytes} bytes as JSON, over steps.maxResultBytes (${this.run.settings.maxResultBytes})`,
        ),
      );
    }
    return encoded;
  }

  private leaseLost(): IdempotencyException {
    return new IdempotencyKeyInFlightException(this.run.lockTimeoutMs);
  }

  private owned(exception: IdempotencyException): IdempotencyException {
    this.thrown.add(exception);
    return exception;
  }
}

function decode<T>(encoded: string): T {
  return (JSON.parse(encoded) as StoredResult).value as T;
}

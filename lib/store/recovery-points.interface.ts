import type { ClaimHandle } from './claim-result.interface';

/**
 * A step of a handler that finished, as its key's record keeps it: the step's name and its
 * result as JSON text (see `IdempotencySteps.run`).
 */
export interface RecordedStep {
  /** The step's name, as the handler gave it. */
  name: string;
  /** The step's result as JSON text, stored and answered as it is. */
  result: string;
}

/**
 * A store that keeps recovery points: the steps a claim of a key finished, so that the claim that
 * takes the key over after a crash or a release resumes after them. Optional: the module asks a
 * store for it with `keepsRecoveryPoints`.
 *
 * The store's other methods change with it: a claim that takes a key over (its lease ended, or it
 * was released) answers the steps its record holds in `ClaimResult.steps`, in order; `release`
 * keeps a key that holds steps, with its lease ended and its claim fenced off (nothing the
 * released claim writes later lands), instead of freeing it, so that only the same request takes
 * it over (a request with another fingerprint gets `mismatch`); a key that expired holds none.
 * Steps are recorded for requests with a fingerprint only.
 */
export interface IdempotencyRecoveryPoints {
  /**
   * Adds `step` as the claim's `index`-th finished step (counting from 0, following the ones its
   * claim answered), and renews the claim's lease: it ends `leaseMs` from now on the store's
   * clock, and the key expires no sooner after the new end than it did after the old one (a store
   * may have set it further at the claim). `false` when the claim is no longer current
   * (taken over), or when the record does not hold exactly `index` steps; nothing is written then.
   */
  saveStep(
    handle: ClaimHandle,
    index: number,
    step: RecordedStep,
    leaseMs: number,
  ): Promise<boolean>;

  /**
   * Called once while the application is built, before `prepare()`, when the module records
   * steps (it has `steps` options): a store whose storage needs something for them checks it in
   * `prepare()` (the PostgreSQL stores need the table's `steps` column). Until then such a store
   * keeps no steps, and works on storage without it. Optional.
   */
  enableRecoveryPoints?(): void;
}

/**
 * A transaction opened for one step's work (an atomic phase): the step's writes go through
 * `transaction`, and its commit records the step with them, so that both land or neither does.
 *
 * @typeParam TTx - what the step's work writes through (a TypeORM `EntityManager`, a pg
 *   `PoolClient`)
 */
export interface IdempotencyStepTransaction<TTx = unknown> {
  /** What the step's work writes through, inside the transaction. */
  readonly transaction: TTx;
  /**
   * Records `step` in the transaction as `saveStep` would (fenced the same way, renewing the
   * lease), then commits. `false`, rolled back, when the claim was not current or its record did
   * not hold exactly `index` steps. Ends the transaction either way, also when it rejects.
   */
  commitWithStep(
    handle: ClaimHandle,
    index: number,
    step: RecordedStep,
    leaseMs: number,
  ): Promise<boolean>;
  /** Rolls the transaction back and ends it (nothing recorded). */
  rollback(): Promise<void>;
}

/**
 * A store that keeps recovery points in the database the application writes to, and can record
 * a step in the transaction of that step's writes (`IdempotencySteps.runInTransaction`).
 * Optional: the module asks a store for it with `runsStepTransactions`.
 */
export interface IdempotencyStepTransactions<TTx = unknown> {
  /** Opens a transaction for one step's work. */
  beginStepTransaction(): Promise<IdempotencyStepTransaction<TTx>>;
}

/** Whether `store` can record a step in the transaction of its writes. */
export function runsStepTransactions(store: object): store is IdempotencyStepTransactions {
  return typeof (store as Partial<IdempotencyStepTransactions>).beginStepTransaction === 'function';
}

/** Whether `store` keeps recovery points. */
export function keepsRecoveryPoints(store: object): store is IdempotencyRecoveryPoints {
  return typeof (store as Partial<IdempotencyRecoveryPoints>).saveStep === 'function';
}

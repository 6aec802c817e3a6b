import type { ClaimHandle, ClaimRequest, ClaimResult } from './claim-result.interface';
import { IdempotencyStore } from './idempotency-store';
import type { StoredResponse } from './stored-response.interface';

/**
 * An open transaction that holds a claimed key. Nothing of it is visible to other requests until
 * it commits; `rollback` (or the death of the process) leaves no trace of the claim or of the
 * handler's writes.
 *
 * @typeParam TTx - what the handler writes through: the store's own transaction object (a
 * TypeORM `EntityManager` for the PostgreSQL store), reachable through
 * `IdempotencyTransactionContext` while the handler runs.
 */
export interface IdempotencyTransactionHandle<TTx = unknown> {
  readonly handle: ClaimHandle;
  /** The transaction the handler's writes go through. */
  readonly transaction: TTx;
  /**
   * Writes the response into the claim's row and commits. When a failed statement of the handler
   * had aborted the transaction, nothing is committed and it throws
   * `HandlerTransactionAbortedError`, leaving the transaction open for `rollback` or
   * `discardWritesAndComplete`. Any other failure leaves it rolled back.
   */
  completeAndCommit(response: StoredResponse, ttlMs: number): Promise<void>;
  /**
   * Rolls the handler's writes back and stores the response alone, keeping the key from other
   * requests in between as far as the store can. Returns false when another request took the key
   * meanwhile (its outcome is then the stored one).
   */
  discardWritesAndComplete(response: StoredResponse, ttlMs: number): Promise<boolean>;
  /** Marks the key as executed but not replayable, and commits (failing like completeAndCommit). */
  markNotReplayableAndCommit(status: number | null, ttlMs: number): Promise<void>;
  /** Rolls back and gives the connection back to the pool. Never throws. */
  rollback(): Promise<void>;
  /**
   * Whether an error the handler raised came from this transaction's connection failing (the
   * database went away, or stayed silent past the limits and the store closed the connection),
   * rather than from the handler itself.
   */
  isConnectionFailure(error: unknown): boolean;
  /**
   * Runs the handler (`work`) where the application finds this transaction: for a transaction
   * that the application's own transaction manager opened (nestjs-cls), inside its async
   * context. Without it, the handler runs as it is called.
   */
  runInTransaction?<T>(work: () => Promise<T>): Promise<T>;
}

/** A handler answered although one of its statements failed and aborted the transaction. */
export class HandlerTransactionAbortedError extends Error {
  constructor(status: number | null) {
    super(
      `nestjs-idempotency: the handler answered ${status ?? 'its own response'}, but a failed statement had aborted its transaction; nothing was committed.`,
    );
    this.name = 'HandlerTransactionAbortedError';
  }
}

/**
 * Bounds on the statements that run in a claimed transaction, the handler's above all: on a
 * server that runs, the database cancels a statement that takes too long; on one that is frozen
 * or unreachable, which cancels nothing, the store gives the transaction up from the client's
 * side, so that no request waits for as long as the outage lasts.
 */
export interface TransactionLimits {
  /**
   * Longest a statement of the transaction may run, in milliseconds, as the database enforces it
   * (PostgreSQL: `statement_timeout` for this transaction alone). `0`: no bound from the store,
   * on either side; the database's own settings apply.
   */
  statementTimeoutMs: number;
  /**
   * How long past `statementTimeoutMs` a statement may go unanswered before the store closes the
   * transaction's connection: the transaction then ends without a commit, and the statement (and
   * any later one) fails as a connection failure (`isConnectionFailure`). In milliseconds.
   */
  graceMs: number;
}

/** Outcome of a transactional claim. */
export type TransactionalClaimResult<TTx = unknown> =
  | { kind: 'claimed'; transaction: IdempotencyTransactionHandle<TTx> }
  /** Another transaction holds the key right now; nothing is held by this attempt. */
  | { kind: 'busy' }
  | Exclude<ClaimResult, { kind: 'claimed' }>;

/** Outcome of a lookup: see `TransactionalIdempotencyStore.lookup`. */
export type TransactionalLookupResult =
  Exclude<ClaimResult, { kind: 'claimed' }> | { kind: 'busy' } | null;

/**
 * A store that can claim a key inside a database transaction, so that the claim, the handler's
 * writes and the stored response commit or roll back together (transactional mode).
 *
 * @typeParam TTx - the transaction object handed to the handler (see `IdempotencyTransactionHandle`).
 */
export abstract class TransactionalIdempotencyStore<TTx = unknown> extends IdempotencyStore {
  /**
   * `store instanceof TransactionalIdempotencyStore` holds for a subclass, and for any store with
   * `lookup` and `claimInTransaction`: a store that extends another store class (as
   * `PostgresIdempotencyStore` extends `PgPoolIdempotencyStore`) cannot also extend this one. For
   * a subclass of this class, `instanceof` keeps its usual meaning.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (Function.prototype[Symbol.hasInstance].call(this, value)) {
      return true;
    }
    if (this !== TransactionalIdempotencyStore || !(value instanceof IdempotencyStore)) {
      return false;
    }
    const candidate = value as Partial<TransactionalIdempotencyStore>;
    return (
      typeof candidate.lookup === 'function' && typeof candidate.claimInTransaction === 'function'
    );
  }

  /**
   * Looks a key up without claiming it, in one read: the stored outcome of a finished key,
   * `in-flight` for a lease-mode claim, `busy` while another transaction holds it, or `null` when
   * it may be claimed (new or expired). What waiting duplicates poll, holding no connection.
   */
  abstract lookup(request: ClaimRequest): Promise<TransactionalLookupResult>;

  /**
   * Opens a transaction and claims the key in it. A key held by another open transaction is
   * `busy`: the attempt gives its connection back at once instead of waiting on the row, so
   * waiting duplicates never pin pooled connections. `limits` bound the statements of the claimed
   * transaction; without them only the database's own settings do.
   */
  abstract claimInTransaction(
    request: ClaimRequest,
    limits?: TransactionLimits,
  ): Promise<TransactionalClaimResult<TTx>>;
}

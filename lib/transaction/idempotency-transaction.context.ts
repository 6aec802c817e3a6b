import { Injectable } from '@nestjs/common';
import { AsyncLocalStorage } from 'node:async_hooks';

/** The transaction of the transactional request being handled. */
export interface ActiveIdempotencyTransaction<TTx = unknown> {
  /** The store's transaction object (see `IdempotencyTransactionHandle.transaction`). */
  readonly transaction: TTx;
  /** `Controller.method`, for messages. */
  readonly route: string;
  /**
   * Set once the handler has ended, while the module records its response and commits (the
   * `onOutcome` hook runs then): a query of the application's is no longer the handler's.
   */
  readonly recording?: boolean;
}

/**
 * Where a transactional request's handler finds its transaction: the interceptor runs the handler
 * (and everything it starts) inside it, in an `AsyncLocalStorage`. Stores' own services read it
 * to hand the transaction to application code (the PostgreSQL store's `IdempotencyTransaction`
 * gives its `EntityManager`).
 */
@Injectable()
export class IdempotencyTransactionContext {
  private readonly storage = new AsyncLocalStorage<ActiveIdempotencyTransaction>();

  /** Runs `fn`, and everything it starts, inside `active`. */
  run<T>(active: ActiveIdempotencyTransaction, fn: () => T): T {
    return this.storage.run(active, fn);
  }

  /** The transaction of the current request, if it runs in one. */
  current<TTx = unknown>(): ActiveIdempotencyTransaction<TTx> | undefined {
    return this.storage.getStore() as ActiveIdempotencyTransaction<TTx> | undefined;
  }
}

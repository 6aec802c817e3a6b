import { Injectable } from '@nestjs/common';
import { AsyncLocalStorage } from 'node:async_hooks';
import type { EntityManager, EntityTarget, ObjectLiteral, Repository } from 'typeorm';

/** What the interceptor knows about the transaction of the request being handled. */
export interface ActiveIdempotencyTransaction {
  manager: EntityManager;
  /** `Controller.method`, for warnings. */
  route: string;
}

/**
 * The transaction of the current transactional request, reachable from any service in its call
 * chain without passing it down by hand (it lives in an `AsyncLocalStorage`).
 *
 * Write through `manager` (or `getRepository`) so the writes commit or roll back together with the
 * stored response. A repository injected with `@InjectRepository()` runs outside the transaction.
 *
 * @example
 * ```ts
 * @Injectable()
 * export class TransfersService {
 *   constructor(private readonly tx: IdempotencyTransaction) {}
 *
 *   async transfer(input: TransferInput) {
 *     const accounts = this.tx.getRepository(Account);
 *     await accounts.decrement({ id: input.from }, 'balance', input.amount);
 *     await accounts.increment({ id: input.to }, 'balance', input.amount);
 *   }
 * }
 * ```
 */
@Injectable()
export class IdempotencyTransaction {
  private readonly storage = new AsyncLocalStorage<ActiveIdempotencyTransaction>();

  /** Whether the current request runs in an idempotency transaction. */
  get active(): boolean {
    return this.storage.getStore() !== undefined;
  }

  /**
   * The EntityManager of the current request's transaction.
   * @throws Error outside a transactional request, so a misplaced write fails loudly instead of
   * silently committing on its own.
   */
  get manager(): EntityManager {
    const current = this.storage.getStore();
    if (!current) {
      throw new Error(
        'nestjs-idempotency: no idempotency transaction here. Use it from a route marked @Idempotent({ transactional: true }).',
      );
    }
    return current.manager;
  }

  /** A repository bound to the current request's transaction. */
  getRepository<Entity extends ObjectLiteral>(target: EntityTarget<Entity>): Repository<Entity> {
    return this.manager.getRepository(target);
  }

  /** @internal Runs `fn` (and everything it starts) inside `transaction`. */
  run<T>(transaction: ActiveIdempotencyTransaction, fn: () => T): T {
    return this.storage.run(transaction, fn);
  }

  /** @internal The current transaction, if any. */
  current(): ActiveIdempotencyTransaction | undefined {
    return this.storage.getStore();
  }
}

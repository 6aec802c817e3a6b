import { Injectable } from '@nestjs/common';
import type { EntityManager, EntityTarget, ObjectLiteral, Repository } from 'typeorm';
import { IdempotencyTransactionContext } from '../../transaction/idempotency-transaction.context';

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
  constructor(private readonly context: IdempotencyTransactionContext) {}

  /** Whether the current request runs in an idempotency transaction. */
  get active(): boolean {
    return this.context.current() !== undefined;
  }

  /**
   * The EntityManager of the current request's transaction.
   * @throws Error outside a transactional request, so a misplaced write fails loudly instead of
   * silently committing on its own.
   */
  get manager(): EntityManager {
    const current = this.context.current<EntityManager>();
    if (!current) {
      throw new Error(
        'nestjs-idempotency: no idempotency transaction here. Use it from a route marked @Idempotent({ transactional: true }).',
      );
    }
    return current.transaction;
  }

  /** A repository bound to the current request's transaction. */
  getRepository<Entity extends ObjectLiteral>(target: EntityTarget<Entity>): Repository<Entity> {
    return this.manager.getRepository(target);
  }
}

import { Inject, Injectable } from '@nestjs/common';
import type { ResolvedModuleSettings } from '../idempotency-options.defaults';
import { IDEMPOTENCY_SETTINGS } from '../idempotency.module-definition';
import { IdempotencyStore } from '../store/idempotency-store';
import { keepsRecoveryPoints } from '../store/recovery-points.interface';
import { IdempotencyStepsContext } from './idempotency-steps.context';

/**
 * Recovery points for handlers of lease-mode routes that call other services: each step's result
 * is recorded on the request's key as the step finishes, so that an attempt after a crash or a
 * failure (the same key, the same request) gets the results of the steps that finished without
 * running them again, and runs the rest. Each step also gets a key of its own to pass downstream
 * as that call's `Idempotency-Key`: a step that was running when its process died is run again
 * with the same key, and the service it calls answers it once.
 *
 * Needs the module's `steps` options and a store that keeps recovery points. Steps must be the
 * same fixed sequence on every attempt (names, order, one at a time); a step's result must be
 * JSON, and the step's caller gets it back as JSON would give it (a `Date` becomes a string) on
 * every attempt alike.
 *
 * @example
 * ```ts
 * @Post()
 * @Idempotent()
 * async create(@Body() order: CreateOrder) {
 *   const reservation = await this.steps.run('reserve', () => this.stock.reserve(order));
 *   const charge = await this.steps.run('charge', (stepKey) =>
 *     this.payments.charge(order.total, { idempotencyKey: stepKey }),
 *   );
 *   return this.steps.run('ship', () => this.shipments.record(reservation, charge));
 * }
 * ```
 */
@Injectable()
export class IdempotencySteps {
  constructor(
    private readonly context: IdempotencyStepsContext,
    @Inject(IDEMPOTENCY_SETTINGS) settings: ResolvedModuleSettings,
    store: IdempotencyStore,
  ) {
    if (settings.steps === null) {
      return;
    }
    if (!keepsRecoveryPoints(store)) {
      throw new Error(
        `nestjs-idempotency: the steps option needs a store that keeps recovery points, and ${store.constructor.name} does not.`,
      );
    }
    store.enableRecoveryPoints?.();
  }

  /**
   * Runs `step` once per key: the first time, or again when no earlier attempt recorded it,
   * then records its result; afterwards, answers the recorded result without running it.
   *
   * @param name - the step's name, unique within the handler and the same on every attempt
   * @param step - the step's work; `stepKey` is its derived key for a downstream call
   * @returns the step's result, as recorded (through JSON)
   */
  run<T>(name: string, step: (stepKey: string) => T | Promise<T>): Promise<T> {
    const steps = this.context.current();
    return steps === undefined ? outsideSteps(name) : steps.step(name, step);
  }

  /**
   * Runs `step` once per key as `run` does, in a database transaction whose commit also records
   * the step's result (an atomic phase): the step's writes and its recovery point land together,
   * or neither does, so a crash at any point leaves the step either done and recorded or not
   * begun. For local writes between calls to other services. The store must run steps in
   * transactions: the PostgreSQL stores do, where `transaction` is the TypeORM `EntityManager`
   * of the transaction (`postgresStore()`) or its pg `PoolClient` (`pgPoolStore()`); another
   * store answers `500` (`steps-unavailable`) before the step runs. The transaction is a
   * connection of its own: the step's work must not wait on locks that the request holds on
   * another one.
   *
   * @typeParam T - the step's result
   * @typeParam TTx - what the store's transaction is (see above)
   * @param name - the step's name, unique within the handler and the same on every attempt
   * @param step - the step's work, writing through `transaction`; `stepKey` is its derived key
   * @returns the step's result, as recorded (through JSON)
   */
  runInTransaction<T, TTx = unknown>(
    name: string,
    step: (transaction: TTx, stepKey: string) => T | Promise<T>,
  ): Promise<T> {
    const steps = this.context.current();
    return steps === undefined ? outsideSteps(name) : steps.stepInTransaction(name, step);
  }
}

function outsideSteps<T>(name: string): Promise<T> {
  return Promise.reject(
    new Error(
      `nestjs-idempotency: step "${name}" ran outside a handler that can record steps: IdempotencySteps needs a lease-mode @Idempotent() route, with the module's steps options set.`,
    ),
  );
}

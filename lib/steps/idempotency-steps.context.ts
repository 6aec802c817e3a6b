import { Injectable } from '@nestjs/common';
import { AsyncLocalStorage } from 'node:async_hooks';
import type { RequestSteps } from './request-steps';

/**
 * Where a lease-mode request's handler finds its steps: the execution runs the handler (and
 * everything it starts) inside them.
 */
@Injectable()
export class IdempotencyStepsContext {
  private readonly storage = new AsyncLocalStorage<RequestSteps>();

  /**
   * Runs `fn`, and everything it starts, with `steps`.
   *
   * @internal
   */
  run<T>(steps: RequestSteps, fn: () => T): T {
    return this.storage.run(steps, fn);
  }

  /**
   * The steps of the current request, if its handler may run steps.
   *
   * @internal
   */
  current(): RequestSteps | undefined {
    return this.storage.getStore();
  }
}

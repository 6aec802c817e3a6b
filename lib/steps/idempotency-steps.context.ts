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

  run<T>(steps: RequestSteps, fn: () => T): T {
    return this.storage.run(steps, fn);
  }

  current(): RequestSteps | undefined {
    return this.storage.getStore();
  }
}

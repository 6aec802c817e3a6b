import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ResolvedRouteSettings } from '../idempotency-options.defaults';
import { waitDelayMs } from '../protocol/wait-backoff';

/** The request that looks, and where it notes how long it waited. */
export interface Waiter {
  readonly settings: Pick<ResolvedRouteSettings, 'concurrency' | 'waitTimeoutMs'>;
  waitDurationMs: number | undefined;
}

/**
 * Looks at a key (`look(attempt)`, from attempt 0) until another request no longer holds it: in
 * `'wait'` mode a duplicate polls, with a growing pause, until the holder finishes or fails or
 * `waitTimeoutMs` would pass; in `'reject'` mode it looks once. Returns the last look, and sets
 * `waiter.waitDurationMs` (from the first look's answer to the last's) when it looked again,
 * whether that last look answered or failed.
 */
export async function waitWhileHeld<R>(
  waiter: Waiter,
  look: (attempt: number) => Promise<R>,
  held: (result: R) => boolean,
): Promise<R> {
  const { settings } = waiter;
  const deadline = Date.now() + settings.waitTimeoutMs;
  let waitingSince: number | undefined;
  try {
    for (let attempt = 0; ; attempt++) {
      const result = await look(attempt);
      const delay = waitDelayMs(attempt);
      if (!held(result) || settings.concurrency === 'reject' || Date.now() + delay > deadline) {
        return result;
      }
      waitingSince ??= performance.now();
      await sleep(delay);
    }
  } finally {
    // However the last look ended, answered or failed, the wait counts apart from the claim.
    if (waitingSince !== undefined) {
      waiter.waitDurationMs = performance.now() - waitingSince;
    }
  }
}

import { setTimeout as sleep } from 'node:timers/promises';
import type { ResolvedRouteSettings } from '../idempotency-options.defaults';
import { waitDelayMs } from '../protocol/wait-backoff';

/**
 * Looks at a key (`look(attempt)`, from attempt 0) until another request no longer holds it: in
 * `'wait'` mode a duplicate polls, with a growing pause, until the holder finishes or fails or
 * `waitTimeoutMs` would pass; in `'reject'` mode it looks once. Returns the last look.
 */
export async function waitWhileHeld<R>(
  settings: Pick<ResolvedRouteSettings, 'concurrency' | 'waitTimeoutMs'>,
  look: (attempt: number) => Promise<R>,
  held: (result: R) => boolean,
): Promise<R> {
  const deadline = Date.now() + settings.waitTimeoutMs;
  for (let attempt = 0; ; attempt++) {
    const result = await look(attempt);
    const delay = waitDelayMs(attempt);
    if (!held(result) || settings.concurrency === 'reject' || Date.now() + delay > deadline) {
      return result;
    }
    await sleep(delay);
  }
}

/** First pause of a waiting duplicate, in milliseconds. */
const FIRST_DELAY_MS = 10;
/** Longest pause between two looks, so a waiter notices a finished key within this. */
const MAX_DELAY_MS = 200;

/**
 * Pause before the `attempt`-th (0-based) look at a busy key: exponential from 10 ms up to 200 ms,
 * with jitter so that a crowd of duplicates does not poll in lockstep.
 */
export function waitDelayMs(attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** Math.min(attempt, 16));
  return Math.ceil(ceiling / 2 + (random() * ceiling) / 2);
}

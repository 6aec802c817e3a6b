/**
 * The reliability suite runs in two profiles: `fast` inside `npm test` (minutes, on every change)
 * and `full` through `npm run test:reliability` (more processes, requests and time).
 */
export type ReliabilityProfile = 'fast' | 'full';

export const PROFILE: ReliabilityProfile =
  process.env.RELIABILITY_PROFILE === 'full' ? 'full' : 'fast';

/** The value for the profile in force. */
export function byProfile<T>(fast: T, full: T): T {
  return PROFILE === 'full' ? full : fast;
}

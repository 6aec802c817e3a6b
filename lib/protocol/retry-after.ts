/** The shortest `Retry-After` sent, and the estimate for a route that has no history yet. */
export const MIN_RETRY_AFTER_MS = 1000;

/** How many recent executions of a route the estimate looks at. */
const WINDOW_SIZE = 32;
/** The share of recent executions expected to have finished by the suggested time. */
const PERCENTILE = 0.9;

/**
 * Durations of a route's most recent executions in this process, for estimating when a running
 * one will be done. A fixed ring: recording costs the same however busy the route is.
 */
export class DurationWindow {
  private readonly durations = new Float64Array(WINDOW_SIZE);
  private count = 0;

  record(durationMs: number): void {
    this.durations[this.count % WINDOW_SIZE] = durationMs;
    this.count++;
  }

  /** The 90th percentile of the recent durations; `undefined` with none recorded. */
  typicalMs(): number | undefined {
    const size = Math.min(this.count, WINDOW_SIZE);
    if (size === 0) {
      return undefined;
    }
    const sorted = this.durations.slice(0, size).sort();
    return sorted[Math.min(size - 1, Math.ceil(size * PERCENTILE) - 1)];
  }
}

/**
 * When a duplicate should come back for the result of the execution that holds its key: the
 * route's typical duration less what the execution has run already, at least one second, at most
 * what is left of its lease (after which the key may be taken over anyway).
 */
export function estimateRetryAfterMs(
  typicalMs: number | undefined,
  elapsedMs: number,
  remainingLeaseMs: number,
): number {
  const estimate = typicalMs === undefined ? MIN_RETRY_AFTER_MS : typicalMs - elapsedMs;
  return Math.max(MIN_RETRY_AFTER_MS, Math.min(estimate, remainingLeaseMs));
}

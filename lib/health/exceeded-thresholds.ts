import type { IdempotencyStoreHealth } from '../store/idempotency-store-health.interface';
import type { ResolvedHealthOptions } from './idempotency-health.options';

/**
 * The thresholds `health` exceeds, each said as a sentence. A detail that is absent or
 * `'unknown'` exceeds nothing: the check reports what it could not measure, and the store's
 * status rests on what it did.
 */
export function exceededThresholds(
  health: IdempotencyStoreHealth,
  thresholds: ResolvedHealthOptions['thresholds'],
): string[] {
  const exceeded: string[] = [];
  const { maxOldestInFlightAgeMs, maxPurgeBacklog, minPartitionsAheadMs } = thresholds;
  const age = health.oldestInFlightAgeMs;
  if (
    maxOldestInFlightAgeMs !== undefined &&
    typeof age === 'number' &&
    age > maxOldestInFlightAgeMs
  ) {
    exceeded.push(`The oldest key in flight is ${age} ms old, above ${maxOldestInFlightAgeMs} ms.`);
  }
  const backlog = health.purgeBacklog;
  if (maxPurgeBacklog !== undefined && typeof backlog === 'number' && backlog > maxPurgeBacklog) {
    exceeded.push(`${backlog} expired keys wait for the purge, above ${maxPurgeBacklog}.`);
  }
  const ahead = health.partitionsAheadMs;
  if (minPartitionsAheadMs !== undefined && ahead !== undefined && ahead < minPartitionsAheadMs) {
    exceeded.push(`Partitions reach ${ahead} ms ahead, below ${minPartitionsAheadMs} ms.`);
  }
  return exceeded;
}

import type { IdempotencyModuleOptions } from '../../../lib';
import {
  type IdempotencyPartitioningOptions,
  resolvePartitioning as resolveFor,
} from '../../../lib/postgres/postgres-store.options';

/** The partitioning of `postgresStore({ partitioning })` in a module with `module`'s options. */
function resolvePartitioning({
  partitioning,
  ...module
}: IdempotencyModuleOptions & { partitioning?: IdempotencyPartitioningOptions }) {
  return resolveFor(partitioning, module);
}

describe('resolvePartitioning', () => {
  it('is unset for an ordinary table', () => {
    expect(resolvePartitioning({})).toBeUndefined();
  });

  it('defaults to daily partitions created three days ahead', () => {
    expect(resolvePartitioning({ partitioning: {} })).toEqual({
      partitionMs: 86_400_000,
      aheadMs: 3 * 86_400_000,
      detachTimeoutMs: 30_000,
    });
  });

  it("refuses partitions that would not reach past a new claim's expiry", () => {
    expect(() => resolvePartitioning({ partitioning: {}, ttlMs: 3 * 86_400_000 })).toThrow(
      /aheadMs \(259200000\) must exceed ttlMs \+ lockTimeoutMs \(259260000\)/,
    );
    expect(() =>
      resolvePartitioning({ partitioning: { aheadMs: 5000 }, ttlMs: 1000, lockTimeoutMs: 4000 }),
    ).toThrow(/must exceed/);
    expect(
      resolvePartitioning({ partitioning: { aheadMs: 5001 }, ttlMs: 1000, lockTimeoutMs: 4000 }),
    ).toEqual({ partitionMs: 86_400_000, aheadMs: 5001, detachTimeoutMs: 30_000 });
  });

  it('refuses to run without the purge interval, which creates the partitions', () => {
    expect(() => resolvePartitioning({ partitioning: {}, purgeIntervalMs: 0 })).toThrow(
      /partitioning needs a purgeIntervalMs/,
    );
  });

  it.each([
    [{ partitionMs: 0 }, /partitionMs must be a positive number/],
    [{ partitionMs: 1.5 }, /partitionMs must be a whole number of seconds/],
    [{ partitionMs: 1500 }, /partitionMs must be a whole number of seconds/],
    [{ aheadMs: -1 }, /aheadMs must be a positive number/],
  ])('refuses %j', (partitioning, message) => {
    expect(() => resolvePartitioning({ partitioning })).toThrow(message);
  });
});

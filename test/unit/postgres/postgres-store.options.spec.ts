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
      claimReachMs: 86_400_000 + 60_000,
      maintenanceIntervalMs: 60_000,
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
      resolvePartitioning({ partitioning: { aheadMs: 7000 }, ttlMs: 1000, lockTimeoutMs: 4000 }),
    ).toEqual({
      partitionMs: 86_400_000,
      aheadMs: 7000,
      claimReachMs: 5000,
      maintenanceIntervalMs: 1000,
      detachTimeoutMs: 30_000,
    });
    // Past the longest claim, but not by two passes of the shortest default interval (1 s).
    expect(() =>
      resolvePartitioning({ partitioning: { aheadMs: 5001 }, ttlMs: 1000, lockTimeoutMs: 4000 }),
    ).toThrow(/maintenanceIntervalMs \(1000, the default\) must be at most half of .* \(1\)/);
  });

  it('runs without a purge interval: creating partitions is maintenance, not purging', () => {
    expect(resolvePartitioning({ partitioning: {}, purgeIntervalMs: 0 })).toMatchObject({
      maintenanceIntervalMs: 60_000,
      detachTimeoutMs: 30_000,
    });
  });

  it('creates partitions a quarter of the margin past the longest claim apart, from 1 s to 1 min', () => {
    const margin = (aheadMs: number) =>
      resolvePartitioning({ partitioning: { aheadMs }, ttlMs: 1000, lockTimeoutMs: 1000 });
    expect(margin(2000 + 20_000)?.maintenanceIntervalMs).toBe(5000);
    expect(margin(2000 + 2000)?.maintenanceIntervalMs).toBe(1000);
    expect(margin(2000 + 3_600_000)?.maintenanceIntervalMs).toBe(60_000);
  });

  it('takes a maintenance interval of up to half the margin, or 0 for maintenance run by the application', () => {
    const options = { ttlMs: 1000, lockTimeoutMs: 1000 };
    const partitioning = { aheadMs: 12_000 };
    const interval = (maintenanceIntervalMs: number) =>
      resolvePartitioning({ partitioning: { ...partitioning, maintenanceIntervalMs }, ...options })
        ?.maintenanceIntervalMs;
    expect(interval(5000)).toBe(5000);
    expect(() => interval(5001)).toThrow(
      /maintenanceIntervalMs \(5001\) must be at most half of aheadMs - ttlMs - lockTimeoutMs \(10000\)/,
    );
    expect(interval(0)).toBe(0);
  });

  it.each([
    [{ partitionMs: 0 }, /partitionMs must be a positive number/],
    [{ partitionMs: 1.5 }, /partitionMs must be a whole number of seconds/],
    [{ partitionMs: 1500 }, /partitionMs must be a whole number of seconds/],
    [{ aheadMs: -1 }, /aheadMs must be a positive number/],
    [{ maintenanceIntervalMs: -1 }, /maintenanceIntervalMs must be a positive number/],
    [{ maintenanceIntervalMs: Number.NaN }, /maintenanceIntervalMs must be a positive number/],
    [{ maintenanceIntervalMs: 1.5 }, /maintenanceIntervalMs must be a whole number/],
    // Node fires a longer timer after 1 ms, over and over.
    [
      { aheadMs: 2 ** 34, maintenanceIntervalMs: 2 ** 31 },
      /maintenanceIntervalMs must be at most 2147483647 ms/,
    ],
  ])('refuses %j', (partitioning, message) => {
    expect(() => resolvePartitioning({ partitioning })).toThrow(message);
  });
});

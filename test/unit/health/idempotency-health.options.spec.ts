import { resolveHealthOptions } from '../../../lib/health/idempotency-health.options';
import { exceededThresholds } from '../../../lib/health/exceeded-thresholds';

describe('resolveHealthOptions', () => {
  it('applies the defaults: 1 s per store, 200 ms per detail, 10 000 counted, no in-flight read', () => {
    expect(resolveHealthOptions({})).toEqual({
      timeoutMs: 1000,
      query: { detailTimeoutMs: 200, purgeBacklogLimit: 10_000, oldestInFlight: false },
      thresholds: {
        maxOldestInFlightAgeMs: undefined,
        maxPurgeBacklog: undefined,
        minPartitionsAheadMs: undefined,
      },
      whenExceeded: 'degraded',
    });
  });

  it('keeps the default detail timeout under a short timeout, and reads in-flight ages for a threshold', () => {
    const resolved = resolveHealthOptions({ timeoutMs: 400, maxOldestInFlightAgeMs: 5000 });
    expect(resolved.query).toEqual({
      detailTimeoutMs: 100,
      purgeBacklogLimit: 10_000,
      oldestInFlight: true,
    });
    expect(
      resolveHealthOptions({ maxOldestInFlightAgeMs: 5000, oldestInFlight: false }).query,
    ).toMatchObject({ oldestInFlight: false });
  });

  it('refuses options that could not work', () => {
    expect(() => resolveHealthOptions({ timeoutMs: 900, detailTimeoutMs: 300 })).toThrow(
      /detailTimeoutMs \(300\) must be less than a third of timeoutMs \(900\)/,
    );
    expect(
      resolveHealthOptions({ timeoutMs: 900, detailTimeoutMs: 299 }).query.detailTimeoutMs,
    ).toBe(299);
    expect(() => resolveHealthOptions({ maxPurgeBacklog: 10_000 })).toThrow(
      /maxPurgeBacklog \(10000\) must be less than purgeBacklogLimit \(10000\)/,
    );
    expect(() => resolveHealthOptions({ timeoutMs: 0 })).toThrow(/timeoutMs must be a positive/);
    expect(() => resolveHealthOptions({ purgeBacklogLimit: 2.5 })).toThrow(/whole number/);
  });

  it('leaves the options object as it was', () => {
    const options = Object.freeze({ timeoutMs: 2000 });
    resolveHealthOptions(options);
    expect(options).toEqual({ timeoutMs: 2000 });
  });
});

describe('exceededThresholds', () => {
  const thresholds = {
    maxOldestInFlightAgeMs: 100,
    maxPurgeBacklog: 5,
    minPartitionsAheadMs: 1000,
  };

  it('names each threshold exceeded, and none at the limits', () => {
    expect(
      exceededThresholds(
        { kind: 'x', oldestInFlightAgeMs: 101, purgeBacklog: 6, partitionsAheadMs: 999 },
        thresholds,
      ),
    ).toEqual([
      'The oldest key in flight is 101 ms old, above 100 ms.',
      '6 expired keys wait for the purge, above 5.',
      'Partitions reach 999 ms ahead, below 1000 ms.',
    ]);
    expect(
      exceededThresholds(
        { kind: 'x', oldestInFlightAgeMs: 100, purgeBacklog: 5, partitionsAheadMs: 1000 },
        thresholds,
      ),
    ).toEqual([]);
  });

  it('counts nothing unknown or absent as exceeded', () => {
    expect(
      exceededThresholds(
        { kind: 'x', oldestInFlightAgeMs: 'unknown', purgeBacklog: 'unknown' },
        thresholds,
      ),
    ).toEqual([]);
    expect(exceededThresholds({ kind: 'x', oldestInFlightAgeMs: null }, thresholds)).toEqual([]);
  });
});

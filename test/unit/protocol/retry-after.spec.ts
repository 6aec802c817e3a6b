import {
  DurationWindow,
  MIN_RETRY_AFTER_MS,
  estimateRetryAfterMs,
} from '../../../lib/protocol/retry-after';

describe('DurationWindow', () => {
  it('has no typical duration before the first execution', () => {
    expect(new DurationWindow().typicalMs()).toBeUndefined();
  });

  it('gives the 90th percentile of what it holds', () => {
    const window = new DurationWindow();
    for (let ms = 1; ms <= 10; ms++) {
      window.record(ms * 100);
    }
    expect(window.typicalMs()).toBe(900);
  });

  it('gives the one duration it holds', () => {
    const window = new DurationWindow();
    window.record(1234);
    expect(window.typicalMs()).toBe(1234);
  });

  it('forgets executions older than the last 32', () => {
    const window = new DurationWindow();
    for (let i = 0; i < 32; i++) {
      window.record(60_000);
    }
    for (let i = 0; i < 32; i++) {
      window.record(200);
    }
    expect(window.typicalMs()).toBe(200);
  });

  it('sorts numerically, not as text', () => {
    const window = new DurationWindow();
    for (const ms of [900, 1000, 80, 7000, 5, 60, 300, 20, 4000, 100]) {
      window.record(ms);
    }
    expect(window.typicalMs()).toBe(4000);
  });
});

describe('estimateRetryAfterMs', () => {
  it('suggests one second for a route with no history', () => {
    expect(estimateRetryAfterMs(undefined, 0, 60_000)).toBe(MIN_RETRY_AFTER_MS);
  });

  it('suggests what is left of the typical duration', () => {
    expect(estimateRetryAfterMs(5000, 1500, 60_000)).toBe(3500);
  });

  it('never suggests less than one second', () => {
    expect(estimateRetryAfterMs(300, 0, 60_000)).toBe(1000);
    expect(estimateRetryAfterMs(5000, 9000, 60_000)).toBe(1000);
  });

  it('never suggests more than the rest of the lease', () => {
    expect(estimateRetryAfterMs(120_000, 1000, 59_000)).toBe(59_000);
  });

  it('suggests one second when less than that is left of the lease', () => {
    expect(estimateRetryAfterMs(10_000, 0, 400)).toBe(1000);
  });
});

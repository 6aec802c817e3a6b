import { readFileSync } from 'node:fs';

/** One reading of a process's resident set size. */
export interface RssSample {
  /** Milliseconds since the sampler started. */
  atMs: number;
  rssMb: number;
}

/** A process's memory over a run, in MB. */
export interface RssSummary {
  pid: number;
  samples: number;
  startMb: number;
  endMb: number;
  maxMb: number;
  /** Median of the second quarter of the samples (after warm-up). */
  secondQuarterMedianMb: number;
  /** Median of the last quarter of the samples. */
  lastQuarterMedianMb: number;
  /** `lastQuarterMedianMb - secondQuarterMedianMb`. */
  growthMb: number;
  /** The growth relative to the second quarter's median. */
  growthRatio: number;
  /** Up to 30 evenly spaced samples, for the report: `[seconds, MB]`. */
  curve: Array<[number, number]>;
}

/** VmRSS of a live process in MB, from /proc (Linux); `null` once the process is gone. */
export function readRssMb(pid: number): number | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
    return match ? Number(match[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** Samples the RSS of child processes on an interval, from outside them. */
export class RssSampler {
  private readonly samples = new Map<number, RssSample[]>();
  private timer: NodeJS.Timeout | undefined;
  private startedAt = 0;

  constructor(
    private readonly pids: readonly number[],
    private readonly intervalMs: number,
  ) {}

  start(): void {
    this.startedAt = Date.now();
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.sample();
  }

  summary(pid: number): RssSummary {
    const samples = this.samples.get(pid) ?? [];
    const values = samples.map((sample) => sample.rssMb);
    const quarter = Math.floor(values.length / 4);
    const second = median(values.slice(quarter, 2 * quarter));
    const last = median(values.slice(values.length - quarter));
    const step = Math.max(1, Math.ceil(samples.length / 30));
    return {
      pid,
      samples: samples.length,
      startMb: round(values[0] ?? 0),
      endMb: round(values[values.length - 1] ?? 0),
      maxMb: round(values.length === 0 ? 0 : Math.max(...values)),
      secondQuarterMedianMb: round(second),
      lastQuarterMedianMb: round(last),
      growthMb: round(last - second),
      growthRatio: second > 0 ? round((last - second) / second) : 0,
      curve: samples
        .filter((_, index) => index % step === 0 || index === samples.length - 1)
        .map((sample) => [round(sample.atMs / 1000), round(sample.rssMb)]),
    };
  }

  private sample(): void {
    const atMs = Date.now() - this.startedAt;
    for (const pid of this.pids) {
      const rssMb = readRssMb(pid);
      if (rssMb !== null) {
        const list = this.samples.get(pid) ?? [];
        list.push({ atMs, rssMb });
        this.samples.set(pid, list);
      }
    }
  }
}

function median(values: readonly number[]): number {
  if (values.length === 0) {
    return 0;
  }
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}

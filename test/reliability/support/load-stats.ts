import { type HttpResult, isReplayed } from './load-driver';

/** Latency figures of a set of requests, in milliseconds (nearest-rank percentiles). */
export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** Counts of one label (or of all of them). */
export interface StatsSummary {
  requests: number;
  /** By status code, or `error:<code>` for requests that got no response. */
  histogram: Record<string, number>;
  /** Responses that carried `Idempotent-Replayed: true`. */
  replayed: number;
  /** 5xx responses by cause: status and problem type (or message), e.g. `503 urn:...`. */
  fiveXxByCause: Record<string, number>;
  latencyMs: LatencySummary;
}

interface Bucket {
  histogram: Map<string, number>;
  replayed: number;
  fiveXx: Map<string, number>;
  latencies: number[];
}

/**
 * Tallies the results of a load run under labels (a phase, or an operation of a mixed run). Keeps
 * counters and latencies only, never bodies, so a long run stays small.
 */
export class LoadStats {
  private readonly buckets = new Map<string, Bucket>();

  record(label: string, result: HttpResult): void {
    let bucket = this.buckets.get(label);
    if (!bucket) {
      bucket = { histogram: new Map(), replayed: 0, fiveXx: new Map(), latencies: [] };
      this.buckets.set(label, bucket);
    }
    const key =
      result.status === null ? `error:${result.error ?? 'unknown'}` : String(result.status);
    bucket.histogram.set(key, (bucket.histogram.get(key) ?? 0) + 1);
    if (isReplayed(result)) {
      bucket.replayed++;
    }
    if (result.status !== null && result.status >= 500) {
      const cause = `${result.status} ${causeOf(result.text)}`;
      bucket.fiveXx.set(cause, (bucket.fiveXx.get(cause) ?? 0) + 1);
    }
    bucket.latencies.push(result.latencyMs);
  }

  labels(): string[] {
    return [...this.buckets.keys()];
  }

  /** The figures of one label, or of every label together. */
  summary(label?: string): StatsSummary {
    const buckets =
      label === undefined
        ? [...this.buckets.values()]
        : [this.buckets.get(label)].filter((bucket): bucket is Bucket => bucket !== undefined);
    const histogram: Record<string, number> = {};
    const fiveXxByCause: Record<string, number> = {};
    const latencies: number[] = [];
    let replayed = 0;
    for (const bucket of buckets) {
      for (const [key, count] of bucket.histogram) {
        histogram[key] = (histogram[key] ?? 0) + count;
      }
      for (const [cause, count] of bucket.fiveXx) {
        fiveXxByCause[cause] = (fiveXxByCause[cause] ?? 0) + count;
      }
      replayed += bucket.replayed;
      for (const latency of bucket.latencies) {
        latencies.push(latency);
      }
    }
    return {
      requests: latencies.length,
      histogram: sortedRecord(histogram),
      replayed,
      fiveXxByCause,
      latencyMs: summarizeLatencies(latencies),
    };
  }

  /** Every label's summary, and `all`. */
  summaries(): Record<string, StatsSummary> {
    const result: Record<string, StatsSummary> = { all: this.summary() };
    for (const label of this.labels()) {
      result[label] = this.summary(label);
    }
    return result;
  }
}

export function summarizeLatencies(values: readonly number[]): LatencySummary {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    count: sorted.length,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted.length === 0 ? 0 : sorted[sorted.length - 1],
  };
}

/** Nearest-rank percentile of values sorted ascending; 0 for none. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) {
    return 0;
  }
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1];
}

/** The problem type of a problem+json body, else Nest's error message, else the text's start. */
function causeOf(text: string): string {
  try {
    const body = JSON.parse(text) as { type?: unknown; message?: unknown };
    if (typeof body.type === 'string') {
      return body.type;
    }
    if (typeof body.message === 'string') {
      return body.message;
    }
  } catch {
    // not JSON: fall through
  }
  return text.slice(0, 80) || '(empty body)';
}

function sortedRecord(record: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => a.localeCompare(b)));
}

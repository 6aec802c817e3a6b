import { type SampleAppProcess, startSampleAppProcess } from '../../utils/sample-app-process';
import type { AdapterName } from '../../utils/test-app';
import type { TestDatabase } from '../../utils/test-database';

/** How one sample-app process is configured (see the table of its variables in docs/sample-app.md). */
export interface AppSpec {
  adapter: AdapterName;
  paymentLatencyMs: number;
  lockTimeoutMs: number;
  ttlMs?: number;
  purgeIntervalMs?: number;
}

/** Booting runs the migrations and Nest's start-up; on a busy 2-core machine that can be slow. */
const READY_TIMEOUT_MS = 90_000;

/**
 * Sample-app processes on one database, started as real child processes. Whatever is started
 * through a cluster is killed by `killAll()` (call it in `afterEach`/`afterAll`).
 */
export class ProcessCluster {
  private readonly children: SampleAppProcess[] = [];

  constructor(private readonly db: TestDatabase) {}

  /** Starts one process and resolves once it answers HTTP. */
  async start(spec: AppSpec): Promise<SampleAppProcess> {
    const env: Record<string, string> = {
      DATABASE_URL: this.db.url,
      HTTP_ADAPTER: spec.adapter,
      PAYMENT_LATENCY_MS: String(spec.paymentLatencyMs),
      IDEMPOTENCY_LOCK_TIMEOUT_MS: String(spec.lockTimeoutMs),
    };
    if (spec.ttlMs !== undefined) {
      env.IDEMPOTENCY_TTL_MS = String(spec.ttlMs);
    }
    if (spec.purgeIntervalMs !== undefined) {
      env.IDEMPOTENCY_PURGE_INTERVAL_MS = String(spec.purgeIntervalMs);
    }
    const child = await startSampleAppProcess({ env, readyTimeoutMs: READY_TIMEOUT_MS });
    this.children.push(child);
    return child;
  }

  /**
   * Starts several processes. The first boots alone because every process runs the migrations at
   * start and two first runs on an empty database would race; the others then boot side by side.
   */
  async startAll(specs: AppSpec[]): Promise<SampleAppProcess[]> {
    if (specs.length === 0) {
      return [];
    }
    const first = await this.start(specs[0]);
    const rest = await Promise.all(specs.slice(1).map((spec) => this.start(spec)));
    return [first, ...rest];
  }

  /** Kills (SIGKILL) every process started here that is still running. */
  async killAll(): Promise<void> {
    await Promise.all(this.children.splice(0).map((child) => child.kill()));
  }
}

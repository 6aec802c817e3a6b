import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';

/** What one backend of the run was doing at one sampled instant. */
export interface WaitObservation {
  atMs: number;
  /**
   * `purge`: running the purge statement; `front`: the front probe; `claim`: a claim worker's
   * claim or complete; `other`: the bench's own queries (the backlog check, for one).
   */
  backend: 'claim' | 'front' | 'purge' | 'other';
  /** `type:event` (`Lock:transactionid`, `LWLock:WALWrite`, `IO:WalSync`, ...), `null` on CPU. */
  wait: string | null;
  /** Waiting for a heavyweight lock that a backend running the purge holds. */
  blockedByPurge: boolean;
}

/**
 * Samples pg_stat_activity of one database every `intervalMs` from a connection of another
 * database, for the backends running a statement: which wait, and, for lock waits, whether a purge
 * is among the blockers (`pg_blocking_pids`, asked only for those, as it takes the lock manager's
 * locks). A wait shorter than the interval is seen only sometimes; the latencies catch the rest.
 */
export class WaitSampler {
  private stopping = false;
  private running: Promise<void> | undefined;
  readonly observations: WaitObservation[] = [];

  constructor(
    private readonly client: pg.Client,
    private readonly database: string,
    private readonly probePid: number,
    private readonly intervalMs = 20,
  ) {}

  start(): void {
    this.running = this.loop();
  }

  async stop(): Promise<WaitObservation[]> {
    this.stopping = true;
    await this.running;
    return this.observations;
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      const atMs = performance.now();
      const { rows } = await this.client.query<{
        pid: number;
        wait: string | null;
        purge: boolean;
        store: boolean;
        blockers: number[] | null;
      }>(
        `SELECT pid, wait_event_type || ':' || wait_event AS wait,
                query LIKE '%:purge%' AS purge,
                query LIKE '%claimed AS (%' OR query LIKE '%SET state = ''completed''%' AS store,
                CASE WHEN wait_event_type = 'Lock' THEN pg_blocking_pids(pid) END AS blockers
           FROM pg_stat_activity
          WHERE datname = $1 AND state = 'active' AND backend_type = 'client backend'`,
        [this.database],
      );
      const purgers = new Set(rows.filter((row) => row.purge).map((row) => row.pid));
      for (const row of rows) {
        this.observations.push({
          atMs,
          backend: this.backendOf(row),
          wait: row.wait,
          blockedByPurge: (row.blockers ?? []).some((pid) => purgers.has(pid)),
        });
      }
      await sleep(this.intervalMs);
    }
  }

  private backendOf(row: {
    pid: number;
    purge: boolean;
    store: boolean;
  }): WaitObservation['backend'] {
    if (row.purge) {
      return 'purge';
    }
    if (row.pid === this.probePid) {
      return 'front';
    }
    return row.store ? 'claim' : 'other';
  }
}

import { setTimeout as sleep } from 'node:timers/promises';
import type { DataSource } from 'typeorm';
import type { PostgresIdempotencyStore } from '../../lib/postgres/typeorm/postgres-idempotency.store';
import { type ClaimRecorder, LEASE_MS, TTL_MS } from './claim-workers';

/**
 * Claims, one after another, expired keys at the head of the purge order: a client retrying a key
 * just after its TTL ran out, which is the row a purge that keeps up is deleting at that moment.
 * Only such a claim can meet a purge batch on the same row (a new key has no row, a live key is
 * not in the purge). The probe has its own one-connection DataSource, so its backend can be told
 * apart from the workers' in pg_stat_activity.
 */
export class FrontProbe {
  private stopping = false;
  private running: Promise<void> | undefined;

  /**
   * @param dataSource a DataSource with a pool of one connection.
   * @param store the store on that DataSource.
   * @param reach keys are picked among the first `reach` expired rows: within the batch being
   *   purged when one is running (all its rows are locked from its start to its commit).
   */
  constructor(
    private readonly dataSource: DataSource,
    private readonly store: PostgresIdempotencyStore,
    private readonly recorder: ClaimRecorder,
    private readonly reach: number,
  ) {}

  /** The probe's backend pid. */
  async backendPid(): Promise<number> {
    const rows = (await this.dataSource.query('SELECT pg_backend_pid() AS pid')) as {
      pid: number;
    }[];
    return rows[0].pid;
  }

  start(): void {
    this.running = this.loop();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.running;
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      const rows = (await this.dataSource.query(
        `SELECT scope, key FROM idempotency_records
          WHERE expires_at <= now() ORDER BY expires_at OFFSET $1 LIMIT 1`,
        [Math.floor(Math.random() * this.reach)],
      )) as { scope: string; key: string }[];
      if (rows.length === 1) {
        const { scope, key } = rows[0];
        // Any fingerprint: an expired key is free for any request.
        const request = {
          scope,
          key,
          fingerprint: 'probe',
          lockTimeoutMs: LEASE_MS,
          ttlMs: TTL_MS,
        };
        await this.recorder.claimAndComplete(this.store, 'front', request);
      }
      // A trickle, as late retries are: the probe should sample the purge, not load the server.
      await sleep(50);
    }
  }
}

import pg from 'pg';
import { type BenchServer, startBenchPostgres } from '../runner/bench-postgres';
import { type ProcessCpu, postgresCpuMs } from '../runner/process-cpu';
import type { ServerMark } from './purge-windows';

/** Counters of the purge statement in pg_stat_statements, summed over its entries. */
export interface PurgeStatementStats {
  calls: number;
  /** Execution time in the server, in ms. */
  execMs: number;
  walRecords: number;
  /** Full-page images: the first change of a page after a checkpoint writes the whole page. */
  walFpi: number;
  walBytes: number;
}

/**
 * The bench's PostgreSQL (reusing the main bench's start-up: embedded with pg_stat_statements, or
 * DATABASE_URL): the table lives in its `main` database; the counters are read, and the waits
 * sampled, from two connections to its `meta` database, so that they neither count nor wait there.
 */
export class PurgeServer {
  private constructor(
    private readonly bench: BenchServer,
    private readonly monitor: pg.Client,
    /** The wait sampler's connection. */
    readonly sampler: pg.Client,
    private readonly databaseOid: number,
    private readonly postgresCpu: ProcessCpu | null,
    /** `SELECT version()`. */
    readonly version: string,
    /** Whether pg_stat_statements answers (it must be preloaded). */
    readonly statementsAvailable: boolean,
  ) {}

  /** Starts (or connects to) the server and opens the monitoring connections. */
  static async start(databaseUrl: string | undefined): Promise<PurgeServer> {
    const bench = await startBenchPostgres(databaseUrl);
    const connect = async () => {
      const client = new pg.Client({ connectionString: bench.urls.meta });
      await client.connect();
      return client;
    };
    const [monitor, sampler] = await Promise.all([connect(), connect()]);
    const { rows } = await monitor.query<{ oid: number; version: string; pid: number }>(
      `SELECT (SELECT oid::int FROM pg_database WHERE datname = $1) AS oid, version() AS version,
              pg_backend_pid() AS pid`,
      [bench.names.main],
    );
    const statementsAvailable = await monitor
      .query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements')
      .then(() => monitor.query('SELECT 1 FROM pg_stat_statements LIMIT 1'))
      .then(
        () => true,
        () => false,
      );
    const { oid, version, pid } = rows[0];
    return new PurgeServer(
      bench,
      monitor,
      sampler,
      oid,
      postgresCpuMs(pid),
      version,
      statementsAvailable,
    );
  }

  /** Whether this run started the server. */
  get embedded(): boolean {
    return this.bench.embedded;
  }

  /** URL of the database holding the table. */
  get url(): string {
    return this.bench.urls.main;
  }

  get database(): string {
    return this.bench.names.main;
  }

  /** The WAL position and the server's CPU so far. */
  async mark(): Promise<ServerMark> {
    // The insert position: pg_current_wal_lsn() lags behind until someone flushes (a VACUUM,
    // which commits without a transaction id, may not).
    const { rows } = await this.monitor.query<{ wal: string }>(
      `SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint::text AS wal`,
    );
    return { walBytes: Number(rows[0].wal), postgresCpuMs: this.postgresCpu?.() ?? null };
  }

  /**
   * The purge statement's counters so far, or `null` without pg_stat_statements. Found by its
   * shape: the normalised text has lost the lock name's constant.
   */
  async purgeStatement(): Promise<PurgeStatementStats | null> {
    if (!this.statementsAvailable) {
      return null;
    }
    const { rows } = await this.monitor.query<Record<keyof PurgeStatementStats, string>>(
      `SELECT coalesce(sum(calls), 0)::text AS "calls",
              coalesce(sum(total_exec_time), 0)::text AS "execMs",
              coalesce(sum(wal_records), 0)::text AS "walRecords",
              coalesce(sum(wal_fpi), 0)::text AS "walFpi",
              coalesce(sum(wal_bytes), 0)::text AS "walBytes"
         FROM pg_stat_statements
        WHERE dbid = $1 AND query LIKE '%DELETE FROM%' AND query LIKE '%SKIP LOCKED%'`,
      [this.databaseOid],
    );
    const row = rows[0];
    return {
      calls: Number(row.calls),
      execMs: Number(row.execMs),
      walRecords: Number(row.walRecords),
      walFpi: Number(row.walFpi),
      walBytes: Number(row.walBytes),
    };
  }

  /** Runs VACUUM on the table (unthrottled, as a manual VACUUM is) and says what it took. */
  async vacuum(): Promise<{
    seconds: number;
    walBytes: number;
    tableBytesBefore: number;
    tableBytesAfter: number;
  }> {
    const client = new pg.Client({ connectionString: this.url });
    await client.connect();
    try {
      const size = async () =>
        Number(
          (
            await client.query<{ size: string }>(
              `SELECT pg_total_relation_size('idempotency_records')::text AS size`,
            )
          ).rows[0].size,
        );
      const tableBytesBefore = await size();
      const before = await this.mark();
      const started = performance.now();
      await client.query('VACUUM idempotency_records');
      const seconds = (performance.now() - started) / 1000;
      const after = await this.mark();
      return {
        seconds,
        walBytes: after.walBytes - before.walBytes,
        tableBytesBefore,
        tableBytesAfter: await size(),
      };
    } finally {
      await client.end();
    }
  }

  /** Closes the connections and stops (or cleans up) the server. */
  async stop(): Promise<void> {
    await Promise.all([this.monitor.end(), this.sampler.end()]).catch(() => undefined);
    await this.bench.stop();
  }
}

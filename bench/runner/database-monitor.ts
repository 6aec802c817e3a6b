import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { type ProcessCpu, postgresCpuMs } from './process-cpu';

/** Calls of one normalised statement (as `pg_stat_statements` groups them). */
export interface StatementCalls {
  query: string;
  calls: number;
  /** Total execution time in the server, in ms (planning and waiting for the client excluded). */
  execMs: number;
}

/** The server's counters at one instant, for one database. */
export interface DatabaseSnapshot {
  /** By `queryid`; `null` without `pg_stat_statements`. */
  statements: Map<string, StatementCalls> | null;
  /**
   * Next transaction id: its delta counts the transactions and subtransactions (a SAVEPOINT
   * followed by a write) that wrote.
   */
  nextXid: bigint;
  /** WAL position in bytes. */
  walBytes: bigint;
  /** WAL flushed so far (an LSN), where the commit records of the next run start. */
  walFlushLsn: string;
  /** CPU of the server's processes, or `null` where they cannot be seen (a remote server). */
  postgresCpuMs: number | null;
}

/** Reads statistics from the run's `meta` database, so that these reads are not counted. */
export class DatabaseMonitor {
  private constructor(
    private readonly client: pg.Client,
    private readonly oids: Map<string, number>,
    /** Whether `pg_stat_statements` answers. */
    readonly statementsAvailable: boolean,
    /** Whether `pg_walinspect` answers (commit records can be counted). */
    readonly walInspectAvailable: boolean,
    private readonly postgresProcess: ProcessCpu | null,
    /** `SELECT version()`. */
    readonly serverVersion: string,
    /** `max_connections` and `superuser_reserved_connections`. */
    readonly maxConnections: number,
    readonly reservedConnections: number,
  ) {}

  static async open(metaUrl: string, databases: readonly string[]): Promise<DatabaseMonitor> {
    const client = new pg.Client({ connectionString: metaUrl });
    await client.connect();
    const { rows } = await client.query<{ datname: string; oid: number }>(
      'SELECT datname, oid::int AS oid FROM pg_database WHERE datname = ANY($1)',
      [databases],
    );
    const oids = new Map(rows.map((row) => [row.datname, row.oid]));
    // Not preloaded (or not installed) on a given server: statements are then counted by the app,
    // and transactions by their ids.
    const statementsAvailable = await succeeds(client, [
      'CREATE EXTENSION IF NOT EXISTS pg_stat_statements',
      'SELECT 1 FROM pg_stat_statements LIMIT 1',
    ]);
    const walInspectAvailable = await succeeds(client, [
      'CREATE EXTENSION IF NOT EXISTS pg_walinspect',
    ]);
    const server = await client.query<{
      pid: number;
      version: string;
      max: number;
      reserved: number;
    }>(
      `SELECT pg_backend_pid() AS pid, version() AS version,
              current_setting('max_connections')::int AS max,
              current_setting('superuser_reserved_connections')::int AS reserved`,
    );
    const { pid, version, max, reserved } = server.rows[0];
    return new DatabaseMonitor(
      client,
      oids,
      statementsAvailable,
      walInspectAvailable,
      postgresCpuMs(pid),
      version,
      max,
      reserved,
    );
  }

  async snapshot(database: string): Promise<DatabaseSnapshot> {
    const oid = this.oidOf(database);
    const position = await this.client.query<{
      next_xid: string;
      wal_bytes: string;
      flushed: string;
    }>(
      `SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS next_xid,
              pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::text AS wal_bytes,
              pg_current_wal_flush_lsn()::text AS flushed`,
    );
    let statements: Map<string, StatementCalls> | null = null;
    if (this.statementsAvailable) {
      const { rows } = await this.client.query<{
        queryid: string;
        query: string;
        calls: string;
        exec_ms: number;
      }>(
        `SELECT queryid::text AS queryid, query, calls::text AS calls, total_exec_time AS exec_ms
           FROM pg_stat_statements WHERE dbid = $1`,
        [oid],
      );
      statements = new Map(
        rows.map((row) => [
          row.queryid,
          { query: row.query, calls: Number(row.calls), execMs: row.exec_ms },
        ]),
      );
    }
    return {
      statements,
      nextXid: BigInt(position.rows[0].next_xid),
      walBytes: BigInt(position.rows[0].wal_bytes.split('.')[0]),
      walFlushLsn: position.rows[0].flushed,
      postgresCpuMs: this.postgresProcess?.() ?? null,
    };
  }

  /**
   * Waits until no session of `databases` is running a statement or sitting in a transaction
   * (requests still in the app when the load generator stopped), seen twice in a row.
   */
  async quiesce(databases: readonly string[], timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let quiet = 0;
    while (quiet < 2) {
      const { rows } = await this.client.query<{ busy: number }>(
        `SELECT count(*)::int AS busy FROM pg_stat_activity
          WHERE datname = ANY($1) AND state IS DISTINCT FROM 'idle' AND pid <> pg_backend_pid()`,
        [databases],
      );
      quiet = rows[0].busy === 0 ? quiet + 1 : 0;
      if (Date.now() > deadline) {
        throw new Error(`${databases.join(', ')} still busy after ${timeoutMs} ms`);
      }
      await sleep(25);
    }
  }

  /**
   * Commit records written to the WAL between two snapshots, in every database: each is one
   * durable commit (a WAL flush with `synchronous_commit`), and a read-only transaction writes
   * none. `null` without `pg_walinspect`, or when the WAL is gone already.
   */
  async commitsBetween(before: DatabaseSnapshot, after: DatabaseSnapshot): Promise<number | null> {
    if (!this.walInspectAvailable) {
      return null;
    }
    if (before.walFlushLsn === after.walFlushLsn) {
      return 0; // pg_get_wal_stats wants a non-empty range
    }
    try {
      const { rows } = await this.client.query<{ commits: string }>(
        `SELECT coalesce(sum(count), 0)::text AS commits
           FROM pg_get_wal_stats($1, $2, true)
          WHERE "resource_manager/record_type" IN ('Transaction/COMMIT', 'Transaction/COMMIT_PREPARED')`,
        [before.walFlushLsn, after.walFlushLsn],
      );
      return Number(rows[0].commits);
    } catch {
      return null;
    }
  }

  close(): Promise<void> {
    return this.client.end();
  }

  private oidOf(database: string): number {
    const oid = this.oids.get(database);
    if (oid === undefined) {
      throw new Error(`Unknown database ${database}`);
    }
    return oid;
  }
}

/** Per-statement call deltas between two snapshots, most frequent first. */
export function statementDeltas(
  before: DatabaseSnapshot,
  after: DatabaseSnapshot,
): StatementCalls[] | null {
  if (!before.statements || !after.statements) {
    return null;
  }
  const deltas: StatementCalls[] = [];
  for (const [id, now] of after.statements) {
    const then = before.statements.get(id);
    const calls = now.calls - (then?.calls ?? 0);
    if (calls > 0) {
      deltas.push({ query: now.query, calls, execMs: now.execMs - (then?.execMs ?? 0) });
    }
  }
  return deltas.sort((a, b) => b.calls - a.calls);
}

async function succeeds(client: pg.Client, statements: readonly string[]): Promise<boolean> {
  try {
    for (const statement of statements) {
      await client.query(statement);
    }
    return true;
  } catch {
    return false;
  }
}

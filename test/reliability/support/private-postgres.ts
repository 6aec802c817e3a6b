import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { initialiseCluster } from '../../../sample-app/database/embedded-postgres';
import { freePort } from '../../../sample-app/database/free-port';
import type { ServerAccount } from '../../../sample-app/database/postgres-binaries';

/** How a restart stops the server: SIGINT (fast shutdown) or SIGQUIT (immediate: a crash). */
export type ShutdownMode = 'fast' | 'immediate';

const SHUTDOWN_SIGNAL: Record<ShutdownMode, NodeJS.Signals> = {
  fast: 'SIGINT',
  immediate: 'SIGQUIT',
};

/** Bounds of the server's own steps; a busy 2-core machine needs room. */
const START_TIMEOUT_MS = 60_000;
const EXIT_TIMEOUT_MS = 30_000;
const MAX_LOG_CHARS = 20_000;

/**
 * A PostgreSQL server owned by one test file, which it may restart, crash and freeze at will.
 * Its data directory persists across restarts (a restart is not a fresh server). Under root it
 * runs as the `postgres` system user, as PostgreSQL requires.
 */
export class PrivatePostgres {
  private process: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private log = '';
  private frozen: number[] = [];

  private constructor(
    readonly dataDir: string,
    readonly port: number,
    private readonly password: string,
    private readonly executable: string,
    private readonly account: ServerAccount | undefined,
  ) {}

  /** Initialises a data directory in the temporary folder and starts the server on a free port. */
  static async start(): Promise<PrivatePostgres> {
    // initdb only (the server's user and binaries included); the server process is started here,
    // so that its pid and signals are under the test's control.
    const cluster = await initialiseCluster(`idem-private-pg-${process.pid}-`);
    const server = new PrivatePostgres(
      cluster.dataDir,
      await freePort(),
      cluster.password,
      cluster.postgres,
      cluster.account,
    );
    await server.startProcess();
    return server;
  }

  /** URL of database `name` (default `postgres`) on this server. */
  url(name = 'postgres'): string {
    return `postgres://postgres:${this.password}@127.0.0.1:${this.port}/${name}`;
  }

  /** Runs one statement on a fresh connection (pools break across restarts). */
  async query<T extends pg.QueryResultRow>(sql: string, values?: unknown[], database?: string) {
    const client = new pg.Client({ connectionString: this.url(database) });
    client.on('error', () => undefined);
    await client.connect();
    try {
      return (await client.query<T>(sql, values)).rows;
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /** The postmaster's pid, as the server itself records it in `postmaster.pid`. */
  postmasterPid(): number {
    const pid = Number(readFileSync(join(this.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    if (!Number.isInteger(pid) || pid <= 0) {
      throw new Error(`no postmaster pid in ${this.dataDir}/postmaster.pid`);
    }
    return pid;
  }

  /**
   * Stops the server the way `mode` says, keeps it down for `downMs`, then starts it again on the
   * same data directory and port. Resolves once it accepts connections again.
   */
  async restart(mode: ShutdownMode, downMs: number): Promise<{ stoppedMs: number }> {
    const started = Date.now();
    await this.signalAndWait(SHUTDOWN_SIGNAL[mode]);
    const stoppedMs = Date.now() - started;
    await sleep(downMs);
    await this.startProcess();
    return { stoppedMs };
  }

  /** SIGSTOPs the postmaster and every process under it (backends, workers): a frozen server. */
  freeze(): number[] {
    const postmaster = this.postmasterPid();
    const stopped = new Set<number>();
    // The postmaster first, so that it forks nothing new; then its tree until no new pid shows up.
    for (let round = 0; round < 5; round++) {
      const tree = [postmaster, ...descendantsOf(postmaster)];
      const fresh = tree.filter((pid) => !stopped.has(pid));
      if (fresh.length === 0) {
        break;
      }
      for (const pid of fresh) {
        signal(pid, 'SIGSTOP');
        stopped.add(pid);
      }
    }
    this.frozen = [...stopped];
    return this.frozen;
  }

  /** SIGCONTs everything `freeze()` stopped (and anything else under the postmaster). */
  thaw(): void {
    const pids = new Set(this.frozen);
    if (this.process?.pid !== undefined) {
      pids.add(this.process.pid);
      for (const pid of descendantsOf(this.process.pid)) {
        pids.add(pid);
      }
    }
    for (const pid of pids) {
      signal(pid, 'SIGCONT');
    }
    this.frozen = [];
  }

  /** The server's recent log lines, for failure messages. */
  output(): string {
    return this.log;
  }

  /** Stops the server (thawing it first) and deletes its data directory. */
  async destroy(): Promise<void> {
    this.thaw();
    try {
      await this.signalAndWait('SIGINT');
    } catch {
      const pid = this.process?.pid;
      if (pid !== undefined) {
        for (const child of [pid, ...descendantsOf(pid)]) {
          signal(child, 'SIGKILL');
        }
      }
      await withDeadline(this.exited, EXIT_TIMEOUT_MS).catch(() => undefined);
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  private async startProcess(): Promise<void> {
    const child = spawn(
      this.executable,
      [
        '-D',
        this.dataDir,
        '-p',
        String(this.port),
        '-c',
        'listen_addresses=127.0.0.1',
        '-c',
        'max_connections=200',
      ],
      {
        ...this.account,
        cwd: this.dataDir,
        env: { ...process.env, LC_MESSAGES: 'C' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    this.process = child;
    this.exited = new Promise((settle) => child.once('exit', () => settle()));
    const ready = new Promise<void>((settle, reject) => {
      const collect = (chunk: Buffer) => {
        this.log = (this.log + chunk.toString('utf8')).slice(-MAX_LOG_CHARS);
        if (this.log.includes('database system is ready to accept connections')) {
          settle();
        }
      };
      // The server logs to stderr; both pipes are drained for its whole life, or it would block.
      child.stdout?.on('data', collect);
      child.stderr?.on('data', collect);
      child.once('exit', (code, sig) =>
        reject(new Error(`postgres exited (${code ?? sig}) before it was ready:\n${this.log}`)),
      );
    });
    this.log = '';
    await withDeadline(ready, START_TIMEOUT_MS);
  }

  private async signalAndWait(sig: NodeJS.Signals): Promise<void> {
    const child = this.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) {
      return;
    }
    signal(this.postmasterPid(), sig);
    await withDeadline(this.exited, EXIT_TIMEOUT_MS);
  }
}

/** Every process below `root`, from the ppid field of /proc/<pid>/stat. */
export function descendantsOf(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) {
      continue;
    }
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const siblings = children.get(ppid) ?? [];
    siblings.push(Number(entry));
    children.set(ppid, siblings);
  }
  const found: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    for (const child of children.get(queue.shift() as number) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Already gone.
  }
}

async function withDeadline<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`not done within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

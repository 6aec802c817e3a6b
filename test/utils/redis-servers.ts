import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { waitFor } from './wait-for';

/*
 * Real Redis servers for the tests, started from the machine's redis-server on free loopback
 * ports (never the shared 6379), keeping nothing on disk, and killed by the tests that started
 * them (and, failing that, when the test process exits).
 */

const run = promisify(execFile);
const HOST = '127.0.0.1';
/** A cluster node also listens on its port + 10 000 (the cluster bus). */
const BUS_OFFSET = 10_000;
/** How the missing binaries are reported, once per run (by redis-store-conformance). */
export const REDIS_MISSING_MESSAGE =
  'Redis suites did not run: redis-server and redis-cli (Redis 7) are not on PATH. Install them (apt-get install redis-server) to run them; under CI=true a missing Redis fails the run.';

/** Paths of redis-server and redis-cli on PATH, or `undefined` when either is missing. */
export function redisBinaries(): { server: string; cli: string } | undefined {
  const find = (name: string) =>
    (process.env.PATH ?? '')
      .split(delimiter)
      .map((dir) => join(dir, name))
      .find((path) => {
        try {
          accessSync(path, constants.X_OK);
          return true;
        } catch {
          return false;
        }
      });
  const server = find('redis-server');
  const cli = find('redis-cli');
  return server && cli ? { server, cli } : undefined;
}

/**
 * `describe` when Redis can run here, `describe.skip` when it cannot; under CI=true a missing
 * Redis throws instead, failing the run. With `report`, a skip prints REDIS_MISSING_MESSAGE: one
 * test file reports for all, so that a run says it once.
 */
export function describeWithRedis(report = false): typeof describe | typeof describe.skip {
  if (redisBinaries()) {
    return describe;
  }
  if (process.env.CI === 'true') {
    throw new Error(REDIS_MISSING_MESSAGE);
  }
  if (report) {
    process.stderr.write(`${REDIS_MISSING_MESSAGE}\n`);
  }
  return describe.skip;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) {
    child.kill('SIGKILL');
  }
});

/** One redis-server child process. */
export interface RedisServer {
  readonly port: number;
  readonly pid: number;
  /** Freezes the server (SIGSTOP): connections stay open, nothing answers. */
  pause(): void;
  /** Thaws a paused server (SIGCONT). */
  resume(): void;
  /** Kills the server (SIGKILL) and waits until it is gone. */
  kill(): Promise<void>;
  /** Starts a killed server again on the same port (empty: it keeps nothing). */
  restart(): Promise<void>;
  /** Kills the server and removes its folder. Safe to call twice. */
  stop(): Promise<void>;
}

/** A Redis Cluster of primaries with one replica each. */
export interface RedisCluster {
  readonly nodes: { host: string; port: number }[];
  readonly servers: RedisServer[];
  stop(): Promise<void>;
}

async function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
      .once('error', () => resolve(false))
      .listen(port, HOST, () => server.close(() => resolve(true)));
  });
}

/** A port that is free, with its cluster bus port free too. */
async function freeRedisPort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    if ((await isFree(port)) && (await isFree(port + BUS_OFFSET))) {
      return port;
    }
  }
}

/** Answers PING with PONG within `timeoutMs`. */
export function ping(port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: HOST, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => done(data.toString().startsWith('+PONG')));
  });
}

function spawnServer(server: string, port: number, dir: string, extra: string[]): ChildProcess {
  const child = spawn(
    server,
    [
      '--port',
      String(port),
      '--bind',
      HOST,
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
      '--daemonize',
      'no',
      '--loglevel',
      'warning',
      ...extra,
    ],
    { stdio: 'ignore' },
  );
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}

async function killChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return;
  }
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

/** Starts a redis-server on a free loopback port; `extra` are more command-line settings. */
export async function startRedisServer(extra: string[] = []): Promise<RedisServer> {
  const binaries = redisBinaries();
  if (!binaries) {
    throw new Error(REDIS_MISSING_MESSAGE);
  }
  for (let attempt = 1; ; attempt++) {
    const port = await freeRedisPort();
    const dir = mkdtempSync(join(tmpdir(), 'nestjs-idempotency-redis-'));
    let child = spawnServer(binaries.server, port, dir, extra);
    const up = async () => {
      await waitFor(async () => {
        if (child.exitCode !== null) {
          throw new Error(`redis-server on port ${port} exited with ${child.exitCode}`);
        }
        return ping(port);
      }, 10_000);
    };
    try {
      await up();
    } catch (error) {
      await killChild(child);
      rmSync(dir, { recursive: true, force: true });
      if (attempt < 3) {
        continue; // another process took the port in between
      }
      throw error;
    }
    const server: RedisServer = {
      port,
      get pid() {
        return child.pid!;
      },
      pause: () => child.kill('SIGSTOP'),
      resume: () => child.kill('SIGCONT'),
      kill: () => killChild(child),
      restart: async () => {
        await killChild(child);
        child = spawnServer(binaries.server, port, dir, extra);
        await up();
      },
      stop: async () => {
        await killChild(child);
        rmSync(dir, { recursive: true, force: true });
      },
    };
    return server;
  }
}

/** Runs redis-cli against `port`; returns its output. */
async function cli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run(redisBinaries()!.cli, ['-h', HOST, '-p', String(port), ...args]);
  return stdout;
}

/**
 * Starts a Redis Cluster of `primaries` primaries with one replica each, and resolves once every
 * node reports `cluster_state:ok` and every primary has its replica in sync.
 */
export async function startRedisCluster(primaries = 3): Promise<RedisCluster> {
  const servers: RedisServer[] = [];
  const stop = async () => {
    await Promise.all(servers.map((server) => server.stop()));
  };
  try {
    for (let i = 0; i < primaries * 2; i++) {
      servers.push(
        await startRedisServer([
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          'nodes.conf',
          '--cluster-node-timeout',
          '2000',
        ]),
      );
    }
    await run(redisBinaries()!.cli, [
      '--cluster',
      'create',
      ...servers.map((server) => `${HOST}:${server.port}`),
      '--cluster-replicas',
      '1',
      '--cluster-yes',
    ]);
    await waitFor(
      async () => {
        for (const server of servers) {
          if (!(await cli(server.port, 'cluster', 'info')).includes('cluster_state:ok')) {
            return false;
          }
          const replication = await cli(server.port, 'info', 'replication');
          if (replication.includes('role:master') && !/slave0:.*state=online/.test(replication)) {
            return false;
          }
        }
        return true;
      },
      30_000,
      100,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    nodes: servers.map((server) => ({ host: HOST, port: server.port })),
    servers,
    stop,
  };
}

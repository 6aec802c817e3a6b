import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/*
 * The bench's own redis-server, started from the machine's binary on a free loopback port (never
 * a server someone else runs), keeping nothing on disk, and killed at the end of the run. The
 * approach of test/utils/redis-servers.ts, cut down to one standalone server.
 */

const HOST = '127.0.0.1';

/** Printed once when the Redis scenarios cannot run. */
export const REDIS_MISSING_LINE =
  'Redis scenarios skipped: no redis-server on PATH (apt-get install redis-server to run them).';

export interface BenchRedis {
  readonly url: string;
  readonly pid: number;
  /** Kills the server and removes its folder. Safe to call twice. */
  stop(): Promise<void>;
}

/** The path of redis-server on PATH, or `undefined`. */
export function redisServerBinary(): string | undefined {
  return (process.env.PATH ?? '')
    .split(delimiter)
    .map((dir) => join(dir, 'redis-server'))
    .find((path) => {
      try {
        accessSync(path, constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
}

/** Starts redis-server on a free port of 127.0.0.1, without persistence. */
export async function startBenchRedis(binary: string): Promise<BenchRedis> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'nestjs-idempotency-bench-redis-'));
    const child = spawn(
      binary,
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
      ],
      { stdio: 'ignore' },
    );
    // If the runner dies without cleaning up, the server goes with it.
    const onExit = () => child.kill('SIGKILL');
    process.once('exit', onExit);
    const stop = async () => {
      process.removeListener('exit', onExit);
      await kill(child);
      rmSync(dir, { recursive: true, force: true });
    };
    if (await answers(child, port, 10_000)) {
      return { url: `redis://${HOST}:${port}`, pid: child.pid ?? -1, stop };
    }
    await stop();
    if (attempt >= 3) {
      throw new Error(`redis-server did not answer on port ${port} within 10 s`);
    }
    // Another process may have taken the port in between: try another.
  }
}

async function freePort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer()
        .once('error', () => resolve(false))
        .listen(port, HOST, () => server.close(() => resolve(true)));
    });
    if (free) {
      return port;
    }
  }
}

/** Polls PING until PONG, the process exits, or `timeoutMs` passes. */
async function answers(child: ChildProcess, port: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && child.exitCode === null && child.signalCode === null) {
    if (await ping(port)) {
      return true;
    }
    await sleep(50);
  }
  return false;
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: HOST, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => done(data.toString().startsWith('+PONG')));
  });
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return;
  }
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

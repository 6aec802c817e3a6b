import { type ChildProcess, fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BENCH_PROCESS_ENV, type BenchProcessConfig } from '../app/bench-app.config';
import { type StatsMessage, isAppMessage } from '../app/bench-app.messages';

/** The compiled bench process, next to this runner in the bench build. */
const APP_ENTRY = join(__dirname, '../app/main.js');

/** Only the tail of the process's output is kept: enough to explain a failed start. */
const MAX_OUTPUT_CHARS = 20_000;

/** The bench applications, in their child process. */
export interface BenchProcess {
  /** Base URL of each application, by name, e.g. `http://127.0.0.1:41234`. */
  readonly urls: Record<string, string>;
  readonly pid: number;
  /** The process's counters (statements sent, CPU, GC) since it started. */
  stats(): Promise<StatsMessage>;
  /** What the process wrote to stdout and stderr (its tail). */
  output(): string;
  /** Asks it to close (SIGTERM) and kills it if it is not gone within 10 s. */
  stop(): Promise<void>;
}

/**
 * Forks the bench process (`node` on the compiled JS) and resolves once its applications listen.
 * It runs with `NODE_ENV=production`, as a deployed app would (which also turns the library's
 * development warning about queries outside the transaction off). With `cpuProfileDir`, it writes
 * a V8 CPU profile there when it exits.
 */
export async function startBenchProcess(
  config: BenchProcessConfig,
  cpuProfileDir?: string,
): Promise<BenchProcess> {
  if (!existsSync(APP_ENTRY)) {
    throw new Error(`${APP_ENTRY} does not exist: npm run bench compiles it first.`);
  }
  const child = fork(APP_ENTRY, [], {
    execArgv: cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${resolve(cpuProfileDir)}`] : [],
    env: { ...process.env, NODE_ENV: 'production', [BENCH_PROCESS_ENV]: JSON.stringify(config) },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let output = '';
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-MAX_OUTPUT_CHARS);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<void>((settle) => child.once('exit', () => settle()));

  const pending = new Map<number, (stats: StatsMessage) => void>();
  let nextId = 0;
  const ports = await new Promise<Record<string, number>>((settle, reject) => {
    const timer = setTimeout(
      () => reject(new Error('The bench apps did not start in 60 s')),
      60_000,
    );
    child.on('message', (message: unknown) => {
      if (!isAppMessage(message)) {
        return;
      }
      if (message.type === 'ready') {
        clearTimeout(timer);
        settle(message.ports);
      } else {
        pending.get(message.id)?.(message);
        pending.delete(message.id);
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(
        new Error(`The bench process exited (${code ?? signal}) before listening:\n${output}`),
      );
    });
  });

  return {
    urls: Object.fromEntries(
      Object.entries(ports).map(([name, port]) => [name, `http://127.0.0.1:${port}`]),
    ),
    pid: child.pid ?? -1,
    output: () => output,
    stats: () =>
      new Promise<StatsMessage>((settle, reject) => {
        const id = nextId++;
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error('The bench process did not answer a stats request within 10 s'));
        }, 10_000);
        pending.set(id, (stats) => {
          clearTimeout(timer);
          settle(stats);
        });
        child.send({ type: 'stats', id });
      }),
    stop: async () => {
      if (isRunning(child)) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

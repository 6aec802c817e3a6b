import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../../sample-app/database/free-port';

/**
 * The compiled sample app. `npm test` builds before Jest starts, and npm runs scripts from the
 * package root, which is also Jest's working directory.
 */
export const SAMPLE_APP_ENTRY = resolve(process.cwd(), 'dist/sample-app/main.js');

/** Only the tail of the child's output is kept: enough to explain a failed start. */
const MAX_OUTPUT_CHARS = 20_000;

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SampleAppProcessOptions {
  /** Set on top of this process's environment. `PORT` is chosen here when absent. */
  env?: Record<string, string>;
  /** Polled until it answers with any HTTP status. Default: `'/'`. */
  readyPath?: string;
  /** How long the app may take to answer. Default: 30 000 ms (migrations run at start). */
  readyTimeoutMs?: number;
  /** Script to run. Default: the compiled sample app. */
  entry?: string;
}

/** A running app in a child process, reachable over HTTP. */
export interface SampleAppProcess {
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  readonly pid: number;
  /** Settles when the process has exited, however it ended. */
  readonly exited: Promise<ExitStatus>;
  /** What the child wrote to stdout and stderr so far (its tail), for failure messages. */
  output(): string;
  /** Sends `signal` (default SIGKILL: a crash) and resolves once the process is gone. */
  kill(signal?: NodeJS.Signals): Promise<ExitStatus>;
  /** Asks for a graceful shutdown (SIGTERM) and kills the process if it is not gone in time. */
  stop(timeoutMs?: number): Promise<ExitStatus>;
}

/**
 * Starts an app (by default the compiled sample app) as a child process and resolves once it
 * answers HTTP. If it exits or does not answer in time, it is killed and the error carries its
 * output. Callers must `kill()` what this returns, in `afterEach`/`afterAll`.
 */
export async function startSampleAppProcess(
  options: SampleAppProcessOptions = {},
): Promise<SampleAppProcess> {
  const entry = options.entry ?? SAMPLE_APP_ENTRY;
  if (!existsSync(entry)) {
    throw new Error(`${entry} does not exist: build first (npm test runs npm run build).`);
  }
  const port = options.env?.PORT ?? String(await freePort());
  const child = spawn(process.execPath, [entry], {
    env: { ...process.env, ...options.env, PORT: port },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-MAX_OUTPUT_CHARS);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<ExitStatus>((settle) =>
    child.once('exit', (code, signal) => settle({ code, signal })),
  );

  const app: SampleAppProcess = {
    url: `http://127.0.0.1:${port}`,
    pid: child.pid ?? -1,
    exited,
    output: () => output,
    kill: (signal = 'SIGKILL') => {
      if (isRunning(child)) {
        child.kill(signal);
      }
      return exited;
    },
    stop: async (timeoutMs = 10_000) => {
      if (isRunning(child)) {
        child.kill('SIGTERM');
      }
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };

  try {
    await waitUntilAnswering(app, options.readyPath ?? '/', options.readyTimeoutMs ?? 30_000);
  } catch (error) {
    await app.kill();
    throw new Error(`${String(error)}\n--- output of pid ${app.pid} ---\n${output}`, {
      cause: error,
    });
  }
  return app;
}

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

async function waitUntilAnswering(
  app: SampleAppProcess,
  path: string,
  timeoutMs: number,
): Promise<void> {
  let gone: ExitStatus | undefined;
  void app.exited.then((status) => (gone = status));
  const deadline = Date.now() + timeoutMs;
  while (!(await answers(new URL(path, app.url)))) {
    if (gone) {
      throw new Error(`App exited (${JSON.stringify(gone)}) before answering HTTP.`);
    }
    if (Date.now() > deadline) {
      throw new Error(`App did not answer HTTP within ${timeoutMs} ms.`);
    }
    await sleep(100);
  }
}

/** Whether anything answers HTTP at `url` (any status: the server is up). */
function answers(url: URL): Promise<boolean> {
  return new Promise((settle) => {
    const probe = request(url, { method: 'GET', agent: false, timeout: 2000 }, (response) => {
      response.resume();
      settle(true);
    });
    probe.on('timeout', () => probe.destroy(new Error('timeout')));
    probe.on('error', () => settle(false));
    probe.end();
  });
}

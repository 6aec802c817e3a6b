import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { EmbeddedPostgresError, USE_YOUR_OWN_SERVER, oneLine } from './embedded-postgres.error';
import { freePort } from './free-port';
import { type ServerAccount, postgresBinaries } from './postgres-binaries';

const execFileAsync = promisify(execFile);

/** A PostgreSQL server started for this process, and how to reach and stop it. */
export interface EmbeddedDatabase {
  /** `postgres://` URL of the `postgres` database on the server. */
  url: string;
  /** Stops the server and deletes its data directory. */
  stop(): Promise<void>;
}

export interface EmbeddedPostgresOptions {
  /** Server settings, passed as `-c name=value`, on top of {@link DEFAULT_SETTINGS}. Default: none. */
  settings?: Readonly<Record<string, string>>;
  /** Start of the data directory's name, under the OS temporary folder. Default: `nestjs-idempotency-pg-`. */
  directoryPrefix?: string;
  /** Receives the server's output as it comes. Default: discarded. */
  log?: (text: string) => void;
}

/** A cluster's data directory, initialised, and how to run a server on it. */
export interface EmbeddedCluster {
  dataDir: string;
  /** Password of the `postgres` superuser. */
  password: string;
  /** The `postgres` executable to start the server with. */
  postgres: string;
  /** Whom to run it as (spread into `spawn`'s options): the `postgres` system user under root. */
  account: ServerAccount | undefined;
}

/** Loopback only, and enough connections for tests that open several pools at once. */
const DEFAULT_SETTINGS: Readonly<Record<string, string>> = {
  listen_addresses: '127.0.0.1',
  max_connections: '300',
};

/** Bounds of the server's own steps; a busy 2-core machine needs room. */
const INITDB_TIMEOUT_MS = 120_000;
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;
const MAX_OUTPUT_CHARS = 20_000;

/** With `LC_MESSAGES=C`, the line the server logs once it accepts connections. */
const READY = 'database system is ready to accept connections';

/**
 * Starts a real PostgreSQL (the binaries of the `embedded-postgres` package) in a fresh data
 * directory under the OS temporary folder, on a free port. Failures are
 * {@link EmbeddedPostgresError}s whose message says why and what to do.
 */
export async function startEmbeddedPostgres(
  options: EmbeddedPostgresOptions = {},
): Promise<EmbeddedDatabase> {
  const cluster = await initialiseCluster(options.directoryPrefix ?? 'nestjs-idempotency-pg-');
  const removeData = () => rm(cluster.dataDir, { recursive: true, force: true });
  const port = await freePort();
  let server: ChildProcess;
  try {
    server = await startServer(
      cluster,
      port,
      { ...DEFAULT_SETTINGS, ...options.settings },
      options.log ?? (() => undefined),
    );
  } catch (error) {
    await removeData();
    throw error;
  }
  // A process that ends without stop() must not leave a server running; its files stay behind.
  const stopOnExit = () => server.kill('SIGINT');
  process.once('exit', stopOnExit);
  return {
    url: `postgres://postgres:${cluster.password}@127.0.0.1:${port}/postgres`,
    stop: async () => {
      process.removeListener('exit', stopOnExit);
      await stopServer(server);
      await removeData();
    },
  };
}

/**
 * Creates and initialises (`initdb`) a data directory whose name starts with `directoryPrefix`,
 * under the OS temporary folder, with a random password for the `postgres` superuser. PostgreSQL
 * refuses to run as root, so under root the cluster belongs to the `postgres` system user,
 * created if missing, and the server must be run as that user (see `account`).
 */
export async function initialiseCluster(directoryPrefix: string): Promise<EmbeddedCluster> {
  const account = await serverAccount();
  const binaries = await postgresBinaries(account);
  const dataDir = await mkdtemp(join(tmpdir(), directoryPrefix));
  try {
    if (account) {
      await chown(dataDir, account.uid, account.gid);
    }
    const password = randomBytes(12).toString('hex');
    await initdb(binaries.initdb, dataDir, password, account);
    return { dataDir, password, postgres: binaries.postgres, account };
  } catch (error) {
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
}

async function serverAccount(): Promise<ServerAccount | undefined> {
  if (process.geteuid?.() !== 0) {
    return undefined;
  }
  const existing = await lookUpPostgresUser();
  if (existing) {
    return existing;
  }
  // Each step may fail because a concurrent start has just done it: the look-up below decides.
  let failure: unknown;
  for (const [command, args] of [
    ['groupadd', ['--system', 'postgres']],
    ['useradd', ['--system', '--gid', 'postgres', '--no-create-home', 'postgres']],
  ] as const) {
    await execFileAsync(command, args).catch((error: unknown) => (failure ??= error));
  }
  const created = await lookUpPostgresUser();
  if (!created) {
    throw new EmbeddedPostgresError(
      `PostgreSQL refuses to run as root, and the postgres system user it would run as could not ` +
        `be created (${oneLine(failure)}): create that user, run as a user other than root, ` +
        `${USE_YOUR_OWN_SERVER}.`,
      { cause: failure },
    );
  }
  return created;
}

async function lookUpPostgresUser(): Promise<ServerAccount | undefined> {
  try {
    const [uid, gid] = await Promise.all(
      ['-u', '-g'].map(async (flag) =>
        Number((await execFileAsync('id', [flag, 'postgres'])).stdout),
      ),
    );
    return { uid, gid };
  } catch {
    return undefined;
  }
}

async function initdb(
  executable: string,
  dataDir: string,
  password: string,
  account: ServerAccount | undefined,
): Promise<void> {
  // initdb reads the password from a file: one in a directory only the server's user can enter.
  const secrets = await mkdtemp(join(tmpdir(), 'nestjs-idempotency-initdb-'));
  try {
    const passwordFile = join(secrets, 'password');
    await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
    if (account) {
      await chown(secrets, account.uid, account.gid);
      await chown(passwordFile, account.uid, account.gid);
    }
    await runToCompletion(
      executable,
      [
        `--pgdata=${dataDir}`,
        '--auth=password',
        '--username=postgres',
        `--pwfile=${passwordFile}`,
        // UTF-8 and a locale that exists everywhere: the host's LANG may name one not installed.
        '--encoding=UTF8',
        '--locale=C',
        '--locale-provider=builtin',
        '--builtin-locale=C.UTF-8',
      ],
      { account, cwd: dataDir },
    );
  } finally {
    await rm(secrets, { recursive: true, force: true });
  }
}

/** Runs a short-lived command; rejects with its one telling output line if it fails. */
function runToCompletion(
  executable: string,
  args: string[],
  { account, cwd }: { account: ServerAccount | undefined; cwd: string },
): Promise<void> {
  return new Promise((settle, reject) => {
    const child = spawn(executable, args, {
      ...account,
      cwd,
      env: { ...process.env, LC_MESSAGES: 'C' },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: INITDB_TIMEOUT_MS,
    });
    let output = '';
    const collect = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-MAX_OUTPUT_CHARS);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.once('error', (error) =>
      reject(
        new EmbeddedPostgresError(
          `Could not run ${executable} (${oneLine(error)}): check that this user may, ` +
            `${USE_YOUR_OWN_SERVER}.`,
          { cause: error },
        ),
      ),
    );
    child.once('close', (code, signal) => {
      if (code === 0) {
        settle();
      } else {
        reject(
          new EmbeddedPostgresError(
            `${executable} failed (${code ?? signal}: ${oneLine(output)}): fix that, ` +
              `${USE_YOUR_OWN_SERVER}.`,
          ),
        );
      }
    });
  });
}

function startServer(
  cluster: EmbeddedCluster,
  port: number,
  settings: Readonly<Record<string, string>>,
  log: (text: string) => void,
): Promise<ChildProcess> {
  const flags = Object.entries(settings).flatMap(([name, value]) => ['-c', `${name}=${value}`]);
  const child = spawn(cluster.postgres, ['-D', cluster.dataDir, '-p', String(port), ...flags], {
    ...cluster.account,
    cwd: cluster.dataDir,
    env: { ...process.env, LC_MESSAGES: 'C' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((settle, reject) => {
    let output = '';
    const fail = (why: string, cause?: unknown) => {
      clearTimeout(timer);
      reject(
        new EmbeddedPostgresError(
          `PostgreSQL did not start (${why}): fix that, ${USE_YOUR_OWN_SERVER}.`,
          { cause },
        ),
      );
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(`not ready within ${START_TIMEOUT_MS} ms: ${oneLine(output)}`);
    }, START_TIMEOUT_MS);
    // Both pipes are drained for the server's whole life, or it would block on a full one.
    const collect = (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      log(text);
      output = (output + text).slice(-MAX_OUTPUT_CHARS);
      if (output.includes(READY)) {
        clearTimeout(timer);
        settle(child);
      }
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.on('error', (error) => fail(oneLine(error), error));
    child.once('exit', (code, signal) => fail(`exit ${code ?? signal}: ${oneLine(output)}`));
  });
}

/** Fast shutdown (SIGINT); an immediate one (SIGQUIT) if that takes too long. */
async function stopServer(server: ChildProcess): Promise<void> {
  if (server.exitCode !== null || server.signalCode !== null) {
    return;
  }
  const exited = new Promise((settle) => server.once('exit', settle));
  server.kill('SIGINT');
  const timer = setTimeout(() => server.kill('SIGQUIT'), STOP_TIMEOUT_MS);
  try {
    await exited;
  } finally {
    clearTimeout(timer);
  }
}

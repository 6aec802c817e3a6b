import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/*
 * The published package, as a user installs it: `npm pack` of the build, unpacked into an app's
 * node_modules next to the peers that every app has. The core and the testing kit must load
 * without TypeORM, pg or ioredis; each adapter needs its own, and loads once they are there.
 */

/** Jest runs from the repository's root. */
const ROOT = process.cwd();
const ALWAYS = ['@nestjs/common', '@nestjs/core', 'rxjs', 'reflect-metadata'];
const FOR_POSTGRES = ['@nestjs/typeorm', 'typeorm', 'pg'];
const FOR_REDIS = ['ioredis'];

let app: string;

beforeAll(() => {
  app = mkdtempSync(join(tmpdir(), 'nestjs-idempotency-package-'));
  execFileSync('npm', ['pack', '--silent', '--pack-destination', app], { cwd: ROOT });
  const tarball = readdirSync(app).find((name) => name.endsWith('.tgz'))!;
  execFileSync('tar', ['xzf', join(app, tarball), '-C', app]);
  mkdirSync(join(app, 'node_modules', '@nestjs'), { recursive: true });
  execFileSync('mv', [join(app, 'package'), join(app, 'node_modules', 'nestjs-idempotency')]);
  link(ALWAYS);
}, 60_000);

afterAll(() => {
  rmSync(app, { recursive: true, force: true });
});

function link(packages: string[]): void {
  for (const name of packages) {
    const target = join(app, 'node_modules', name);
    mkdirSync(dirname(target), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules', name), target);
  }
}

/** Runs `code` with Node in the app's folder; returns what it printed. */
function run(code: string): string {
  return execFileSync(process.execPath, ['-e', `require('reflect-metadata');${code}`], {
    cwd: app,
    encoding: 'utf8',
  }).trim();
}

const exportsOf = (entry: string) =>
  JSON.parse(run(`console.log(JSON.stringify(Object.keys(require('${entry}')).sort()))`));

it('loads the core and the testing kit without TypeORM, pg or ioredis installed', () => {
  expect(exportsOf('nestjs-idempotency')).toEqual(
    expect.arrayContaining(['IdempotencyModule', 'Idempotent', 'IdempotencyStore']),
  );
  expect(exportsOf('nestjs-idempotency/testing')).toEqual([
    'InMemoryIdempotencyStore',
    'describeIdempotencyStore',
  ]);
  expect(() => run(`require('nestjs-idempotency/postgres')`)).toThrow(/@nestjs\/typeorm/);
  expect(() => run(`require('nestjs-idempotency/redis')`)).toThrow(/Cannot find module 'ioredis'/);
});

it('keeps the PostgreSQL adapter out of the core entry point', () => {
  const core = exportsOf('nestjs-idempotency');
  for (const name of ['postgresStore', 'PostgresIdempotencyStore', 'IdempotencyTransaction']) {
    expect(core).not.toContain(name);
  }
});

it('loads the PostgreSQL adapter once its peers are installed', () => {
  link(FOR_POSTGRES);
  expect(exportsOf('nestjs-idempotency/postgres')).toEqual(
    expect.arrayContaining(['postgresStore', 'IdempotencyTransaction', 'partitionedMigrationSql']),
  );
});

it('loads the Redis adapter once ioredis is installed, and the core still without it', () => {
  link(FOR_REDIS);
  expect(exportsOf('nestjs-idempotency/redis')).toEqual(
    expect.arrayContaining(['redisStore', 'RedisIdempotencyStore', 'createRedisClient']),
  );
  const loaded = (entry: string) =>
    run(
      `require('${entry}'); console.log(Object.keys(require.cache).some((path) => path.includes('/node_modules/ioredis/')))`,
    );
  expect(loaded('nestjs-idempotency')).toBe('false');
  expect(loaded('nestjs-idempotency/testing')).toBe('false');
  expect(loaded('nestjs-idempotency/redis')).toBe('true');
  const core = exportsOf('nestjs-idempotency');
  for (const name of ['redisStore', 'RedisIdempotencyStore', 'createRedisClient']) {
    expect(core).not.toContain(name);
  }
});

it('exposes no deep path beyond its entry points', () => {
  expect(() => run(`require('nestjs-idempotency/dist/lib/idempotency.interceptor')`)).toThrow(
    /ERR_PACKAGE_PATH_NOT_EXPORTED|not defined by "exports"/,
  );
});

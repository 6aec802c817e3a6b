import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
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
/** The tarball's file names, as `package/<path>`. */
let packed: string[];

beforeAll(() => {
  app = mkdtempSync(join(tmpdir(), 'nestjs-idempotency-package-'));
  // The build is the one `npm test` just made; prepack would build it again.
  execFileSync('npm', ['pack', '--silent', '--ignore-scripts', '--pack-destination', app], {
    cwd: ROOT,
  });
  const tarball = readdirSync(app).find((name) => name.endsWith('.tgz'))!;
  packed = execFileSync('tar', ['tzf', join(app, tarball)], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean);
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
    if (existsSync(target)) {
      continue;
    }
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

/** The modules of TypeORM and @nestjs/typeorm that requiring `entry` loaded. */
const typeormLoadedBy = (entry: string): string[] =>
  JSON.parse(
    run(
      `require('${entry}'); console.log(JSON.stringify(Object.keys(require.cache).filter((path) => /\\/node_modules\\/(typeorm|@nestjs\\/typeorm)\\//.test(path))))`,
    ),
  );

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

it('loads the node-postgres store with pg installed and neither TypeORM nor @nestjs/typeorm', () => {
  // pg's own dependencies resolve from the link's real path, next to it in the repository.
  link(['pg']);
  expect(exportsOf('nestjs-idempotency/pg')).toEqual(
    expect.arrayContaining([
      'pgPoolStore',
      'PgPoolIdempotencyStore',
      'createIdempotencyTableSql',
      'createPartitionedIdempotencyTableSql',
      'CREATE_IDEMPOTENCY_TABLE_SQL',
      'createInFlightIndexSql',
      'partitionedMigrationSql',
      'AppTransactionIdempotencyStore',
      'clsTransactionHost',
      'kyselyTransactionalAdapter',
      'knexTransactionalAdapter',
      'drizzleQuery',
      'kyselyQuery',
      'knexQuery',
      'entityManagerQuery',
      'prismaQuery',
    ]),
  );
  expect(typeormLoadedBy('nestjs-idempotency/pg')).toEqual([]);
  // The TypeORM store still needs its own peers.
  expect(() => run(`require('nestjs-idempotency/postgres')`)).toThrow(/@nestjs\/typeorm/);
});

it('loads the PostgreSQL adapter once its peers are installed', () => {
  link(FOR_POSTGRES);
  expect(exportsOf('nestjs-idempotency/postgres')).toEqual(
    expect.arrayContaining(['postgresStore', 'IdempotencyTransaction', 'partitionedMigrationSql']),
  );
});

it('keeps TypeORM out of the node-postgres store even once it is installed', () => {
  expect(typeormLoadedBy('nestjs-idempotency/pg')).toEqual([]);
  // The check sees TypeORM when an entry point does load it.
  expect(typeormLoadedBy('nestjs-idempotency/postgres')).not.toEqual([]);
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

it('loads the health indicator once @nestjs/terminus is installed; no other entry point loads it', () => {
  expect(() => run(`require('nestjs-idempotency/health')`)).toThrow(
    /Cannot find module '@nestjs\/terminus'/,
  );
  link(['@nestjs/terminus']);
  expect(exportsOf('nestjs-idempotency/health')).toEqual([
    'IDEMPOTENCY_HEALTH_DEFAULTS',
    'IdempotencyHealthIndicator',
  ]);
  const loaded = (entry: string) =>
    run(
      `require('${entry}'); console.log(Object.keys(require.cache).some((path) => path.includes('/node_modules/@nestjs/terminus/')))`,
    );
  for (const entry of ['', '/testing', '/postgres', '/redis']) {
    expect([entry, loaded(`nestjs-idempotency${entry}`)]).toEqual([entry, 'false']);
  }
  expect(loaded('nestjs-idempotency/health')).toBe('true');
});

it('loads the JetStream transport once the NATS client is installed; no other entry point loads it', () => {
  expect(() => run(`require('nestjs-idempotency/nats')`)).toThrow(/Cannot find module '@nats-io\//);
  link(['@nestjs/microservices', '@nats-io/transport-node', '@nats-io/jetstream']);
  expect(exportsOf('nestjs-idempotency/nats')).toEqual([
    'JETSTREAM_SERVER_DEFAULTS',
    'JETSTREAM_TRANSPORT',
    'JetStreamContext',
    'JetStreamServer',
  ]);
  const loaded = (entry: string) =>
    run(
      `require('${entry}'); console.log(Object.keys(require.cache).some((path) => path.includes('/node_modules/@nats-io/')))`,
    );
  for (const entry of ['', '/testing', '/postgres', '/redis', '/pg']) {
    expect([entry, loaded(`nestjs-idempotency${entry}`)]).toEqual([entry, 'false']);
  }
  expect(loaded('nestjs-idempotency/nats')).toBe('true');
});

it('exposes no deep path beyond its entry points', () => {
  expect(() => run(`require('nestjs-idempotency/dist/lib/idempotency.interceptor')`)).toThrow(
    /ERR_PACKAGE_PATH_NOT_EXPORTED|not defined by "exports"/,
  );
});

it('holds the build, its types and source maps, the SQL files, the licence, README and changelog, and nothing else', () => {
  const outside = packed.filter(
    (name) =>
      !name.startsWith('package/dist/lib/') &&
      !/^package\/sql\/[^/]+\.sql$/.test(name) &&
      ![
        'package/package.json',
        'package/README.md',
        'package/LICENSE',
        'package/CHANGELOG.md',
      ].includes(name),
  );
  expect(outside).toEqual([]);
  for (const file of ['LICENSE', 'README.md', 'CHANGELOG.md', 'dist/lib/index.d.ts']) {
    expect(packed).toContain(`package/${file}`);
  }
  expect(packed.filter((name) => /\.(spec|e2e-spec)\.|\/test\/|\/bench\//.test(name))).toEqual([]);
});

it('ships the table as plain SQL files, and nestjs-idempotency/pg as an entry point', () => {
  for (const file of [
    'idempotency-records.sql',
    'idempotency-records-partitioned.sql',
    'idempotency-records-in-flight-index.sql',
  ]) {
    expect(packed).toContain(`package/sql/${file}`);
  }
  // The manifest users install, not the repository's.
  const manifest = JSON.parse(
    readFileSync(join(app, 'node_modules', 'nestjs-idempotency', 'package.json'), 'utf8'),
  ) as {
    exports: Record<string, { types?: string; default?: string }>;
    typesVersions: Record<string, Record<string, string[]>>;
  };
  const entry = manifest.exports['./pg'];
  expect(entry).toEqual({
    types: './dist/lib/postgres/pool/index.d.ts',
    default: './dist/lib/postgres/pool/index.js',
  });
  // For consumers still compiled with moduleResolution "node", which ignores "exports".
  expect(manifest.typesVersions['*'].pg).toEqual(['dist/lib/postgres/pool/index.d.ts']);
  expect(packed).toContain(`package/${entry.types!.slice(2)}`);
  expect(packed).toContain(`package/${entry.default!.slice(2)}`);
  // Resolvable through "exports", as tools that read package files by name (and Yarn PnP) need.
  expect(
    run(
      `console.log(require('fs').readFileSync(require.resolve('nestjs-idempotency/sql/idempotency-records.sql'), 'utf8').includes('CREATE TABLE IF NOT EXISTS idempotency_records'))`,
    ),
  ).toBe('true');
});

it('ships source maps that resolve without the sources: each embeds the text it maps', () => {
  const maps = packed.filter((name) => name.endsWith('.js.map'));
  expect(maps.length).toBeGreaterThan(10);
  for (const name of maps) {
    const map = JSON.parse(
      readFileSync(
        join(app, 'node_modules', 'nestjs-idempotency', name.slice('package/'.length)),
        'utf8',
      ),
    ) as { sources: string[]; sourcesContent?: (string | null)[] };
    expect({ name, embedded: map.sourcesContent?.length }).toEqual({
      name,
      embedded: map.sources.length,
    });
    expect(map.sourcesContent!.every((text) => typeof text === 'string' && text.length > 0)).toBe(
      true,
    );
  }
});

/** A consumer's code: every entry point imported, typed uses of the public API. */
const CONSUMER = `import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { IdempotencyModule, IdempotencyStore, Idempotent } from 'nestjs-idempotency';
import { postgresStore } from 'nestjs-idempotency/postgres';
import { pgPoolStore } from 'nestjs-idempotency/pg';
import { redisStore } from 'nestjs-idempotency/redis';
import { InMemoryIdempotencyStore } from 'nestjs-idempotency/testing';

const store: IdempotencyStore = new InMemoryIdempotencyStore();
const registration = IdempotencyModule.forRoot({ store, ttlMs: 60_000, transactionalStore: postgresStore() });
const onRedis = IdempotencyModule.forRoot({ store: redisStore({ url: 'redis://127.0.0.1:6379' }) });
const onPool = IdempotencyModule.forRoot({ store: pgPoolStore({ connection: 'postgres://127.0.0.1/app' }) });

class PaymentsController {
  @Idempotent({ ttlMs: 1_000 })
  create(): { ok: boolean } {
    return { ok: true };
  }
}

// Started without @nestjs/swagger installed: the module documents routes only when it is.
@Module({ imports: [IdempotencyModule.forRoot({ store: new InMemoryIdempotencyStore() })] })
class AppModule {}

async function main(): Promise<void> {
  const app = await NestFactory.createApplicationContext(AppModule, { logger: false });
  await app.close();
  console.log(
    [registration.module.name, Array.isArray(onRedis.providers), Array.isArray(onPool.providers), new PaymentsController().create().ok].join(' '),
  );
}
void main();
`;

it.each([
  ['CommonJS', 'commonjs'],
  ['ES modules', 'module'],
])(
  'compiles and runs a TypeScript consumer written as %s',
  (_kind, type) => {
    link([...FOR_POSTGRES, ...FOR_REDIS, '@types/node']);
    const dir = join(app, `consumer-${type}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ type }));
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          // As a Nest 12 app is compiled: its CommonJS output may require() Nest's ES modules.
          module: 'node20',
          moduleResolution: 'node16',
          target: 'es2022',
          strict: true,
          experimentalDecorators: true,
          emitDecoratorMetadata: true,
          skipLibCheck: true,
          types: ['node'],
          outDir: 'out',
        },
        files: ['main.ts'],
      }),
    );
    writeFileSync(join(dir, 'main.ts'), CONSUMER);
    try {
      execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', dir], {
        cwd: dir,
        encoding: 'utf8',
      });
    } catch (error) {
      // tsc prints its diagnostics on stdout.
      throw new Error(`tsc failed:\n${(error as { stdout?: string }).stdout ?? String(error)}`, {
        cause: error,
      });
    }
    const output = execFileSync(process.execPath, [join(dir, 'out', 'main.js')], {
      cwd: dir,
      encoding: 'utf8',
    });
    expect(output.trim()).toBe('IdempotencyModule true true true');
  },
  60_000,
);

/**
 * An app with one idempotent route (`POST /things`, written without TypeScript's decorators) that
 * answers two requests with one key, then prints their statuses, the replay header, whether
 * anything of OpenTelemetry was loaded, and `after(app)`'s text.
 */
const servingApp = (before: string, after: string) => `
const { Controller, Module, Post } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { IdempotencyModule, Idempotent } = require('nestjs-idempotency');
const { InMemoryIdempotencyStore } = require('nestjs-idempotency/testing');
${before}
class Things { create() { return { ok: true }; } }
const method = Object.getOwnPropertyDescriptor(Things.prototype, 'create');
Post()(Things.prototype, 'create', method);
Idempotent()(Things.prototype, 'create', method);
Controller('things')(Things);
class AppModule {}
Module({
  imports: [IdempotencyModule.forRoot({ store: new InMemoryIdempotencyStore(), purgeIntervalMs: 0 })],
  controllers: [Things],
})(AppModule);
(async () => {
  const app = await NestFactory.create(AppModule, { logger: false });
  await app.listen(0, '127.0.0.1');
  const post = async () =>
    fetch((await app.getUrl()) + '/things', { method: 'POST', headers: { 'Idempotency-Key': 'k' } });
  const first = await post();
  const second = await post();
  const otel = Object.keys(require.cache).some((path) => path.includes('/@opentelemetry/'));
  console.log([first.status, second.status, second.headers.get('idempotent-replayed'), otel, await (${after})()].join(' '));
  await app.close();
})();
`;

it('starts and serves requests without @opentelemetry/api installed', () => {
  expect(run(servingApp('', 'async () => "done"'))).toBe('201 201 true false done');
});

it('records metrics with @opentelemetry/api and an SDK installed (the CommonJS build loads it)', () => {
  link(['@opentelemetry/api', '@opentelemetry/sdk-metrics']);
  const sdk = `
const { metrics } = require('@opentelemetry/api');
const { MeterProvider, MetricReader } = require('@opentelemetry/sdk-metrics');
class Reader extends MetricReader {
  onForceFlush() { return Promise.resolve(); }
  onShutdown() { return Promise.resolve(); }
}
const reader = new Reader();
metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
`;
  const requests = `async () => (await reader.collect()).resourceMetrics.scopeMetrics
  .flatMap((scope) => scope.metrics)
  .filter((metric) => metric.descriptor.name === 'idempotency.requests')
  .flatMap((metric) => metric.dataPoints)
  .map((point) => point.attributes['idempotency.outcome'] + '=' + point.value)
  .sort()
  .join(',')`;
  expect(run(servingApp(sdk, requests))).toBe('201 201 true true completed=1,replayed=1');
});

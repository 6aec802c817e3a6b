import { Redis } from 'ioredis';
import pg from 'pg';
import { PARTITIONED_IDEMPOTENCY_TABLE, SINGLE_IDEMPOTENCY_TABLE } from './app/bench-app.config';
import { BENCH_USAGE, type BenchConfig, readBenchConfig, wantsHelp } from './bench.config';
import { type BenchProcess, startBenchProcess } from './runner/app-process';
import { type BenchServer, startBenchPostgres } from './runner/bench-postgres';
import { REDIS_MISSING_LINE, redisServerBinary, startBenchRedis } from './runner/bench-redis';
import { BenchRunner } from './runner/bench-runner';
import { DatabaseMonitor } from './runner/database-monitor';
import { postgresRecords } from './runner/exactly-once';
import { type FillResult, fillIdempotencyTable } from './runner/fill';
import { type ProcessCpu, processCpuMs } from './runner/process-cpu';
import { ourRedisRecords, peerRedisRecords } from './runner/redis-records';
import { formatComparison, formatReport } from './runner/report';
import {
  type BenchResults,
  RESULTS_FORMAT,
  describeEnvironment,
  findPrevious,
  writeResults,
} from './runner/results-file';
import { type AppName, REDIS_APPS, type Scenario, selectScenarios } from './runner/scenarios';
import { summarize } from './runner/summary';

/**
 * `npm run bench`: starts PostgreSQL and the bench apps, measures every scenario in interleaved
 * rounds, checks exactly-once after every run, prints the tables and writes bench/results/.
 * Exits 1 when an execution was duplicated or lost; a missed performance target is reported only.
 */
async function main(): Promise<number> {
  if (wantsHelp()) {
    console.log(BENCH_USAGE);
    return 0;
  }
  const config = readBenchConfig();
  const log = (line: string) => console.error(`[bench] ${line}`);
  const redisBinary = redisServerBinary();
  let scenarios: Scenario[] = selectScenarios(config.only);
  const onRedis = (scenario: Scenario) => REDIS_APPS.includes(scenario.app);
  if (!redisBinary && scenarios.some(onRedis)) {
    log(REDIS_MISSING_LINE);
    scenarios = scenarios.filter((scenario) => !onRedis(scenario));
  }
  const startedAt = new Date().toISOString();
  const environment = describeEnvironment();
  const cleanups: (() => Promise<unknown>)[] = [];
  const cleanUp = async () => {
    for (const cleanup of cleanups.splice(0).reverse()) {
      await cleanup().catch((error: unknown) => log(`cleanup: ${String(error)}`));
    }
  };
  process.once('SIGINT', () => void cleanUp().finally(() => process.exit(130)));

  try {
    log(config.databaseUrl ? 'using DATABASE_URL' : 'starting an embedded PostgreSQL');
    const server = await startBenchPostgres(config.databaseUrl);
    cleanups.push(() => server.stop());
    const monitor = await DatabaseMonitor.open(server.urls.meta, [
      server.names.main,
      server.names.full,
    ]);
    cleanups.push(() => monitor.close());
    const needed = new Set<AppName>(['main', ...scenarios.map((scenario) => scenario.app)]);
    const kept = needed.size * config.poolSize + 3;
    if (monitor.maxConnections - monitor.reservedConnections < kept) {
      throw new Error(
        `The server allows ${monitor.maxConnections} connections (${monitor.reservedConnections} reserved); ` +
          `the bench keeps ${kept} open (${needed.size} apps x ${config.poolSize} + 3). ` +
          'Raise max_connections, or run fewer scenarios with --only.',
      );
    }
    let redisUrl: string | null = null;
    let redisClient: Redis | null = null;
    let redisCpu: ProcessCpu | undefined;
    if (redisBinary && scenarios.some(onRedis)) {
      const redis = await startBenchRedis(redisBinary);
      cleanups.push(() => redis.stop());
      log(`started redis-server (pid ${redis.pid}) on ${redis.url}`);
      redisUrl = redis.url;
      redisCpu = processCpuMs(redis.pid);
      redisClient = new Redis(redis.url, { lazyConnect: true });
      await redisClient.connect();
      const client = redisClient;
      cleanups.push(() => client.quit());
    }
    const apps = await startApps(config, server, needed, redisUrl);
    cleanups.push(() => apps.stop());
    const pools = {
      main: new pg.Pool({ connectionString: server.urls.main, max: 1 }),
      full: new pg.Pool({ connectionString: server.urls.full, max: 1 }),
    };
    cleanups.push(() => Promise.all([pools.main.end(), pools.full.end()]));

    let fill: FillResult | null = null;
    if (scenarios.some((scenario) => scenario.app === 'full')) {
      log(`filling the idempotency table with ${config.fillRows.toLocaleString('en')} rows`);
      fill = await fillIdempotencyTable(server.urls.full, config.fillRows);
      log(`filled in ${fill.seconds.toFixed(1)} s`);
    }

    const runner = new BenchRunner(
      config,
      {
        apps,
        databases: {
          main: server.names.main,
          global: server.names.main,
          pass: server.names.main,
          full: server.names.full,
          part: server.names.main,
          pool: server.names.main,
          cls: server.names.main,
          redis: server.names.main,
          peer: server.names.main,
        },
        pools: {
          main: pools.main,
          global: pools.main,
          pass: pools.main,
          full: pools.full,
          part: pools.main,
          pool: pools.main,
          cls: pools.main,
          redis: pools.main,
          peer: pools.main,
        },
        records: {
          main: postgresRecords(pools.main, SINGLE_IDEMPOTENCY_TABLE),
          global: postgresRecords(pools.main, SINGLE_IDEMPOTENCY_TABLE),
          pass: postgresRecords(pools.main, SINGLE_IDEMPOTENCY_TABLE),
          full: postgresRecords(pools.full, SINGLE_IDEMPOTENCY_TABLE),
          part: postgresRecords(pools.main, PARTITIONED_IDEMPOTENCY_TABLE),
          pool: postgresRecords(pools.main, SINGLE_IDEMPOTENCY_TABLE),
          cls: postgresRecords(pools.main, SINGLE_IDEMPOTENCY_TABLE),
          ...(redisClient
            ? {
                redis: ourRedisRecords(redisClient),
                peer: peerRedisRecords(redisClient, '/lease'),
              }
            : {}),
        },
        monitor,
        redisCpu,
      },
      log,
    );
    log('creating the replay keys');
    await runner.prepareReplays(scenarios);
    log(`warming up (${config.warmupRequests} requests per app)`);
    await runner.warmUp(scenarios);
    const runs = await runner.measureRounds(scenarios);

    const summaries = summarize(scenarios, runs);
    const targets = summaries.flatMap((summary) => summary.targets);
    const duplicates = summaries.reduce((total, s) => total + s.exactlyOnce.duplicates, 0);
    const {
      databaseUrl: _url,
      compareWith: _compare,
      cpuProfileDir: _profile,
      resultsDir,
      ...settings
    } = config;
    const results: BenchResults = {
      format: RESULTS_FORMAT,
      startedAt,
      finishedAt: new Date().toISOString(),
      settings,
      environment: {
        ...environment,
        postgres: monitor.serverVersion,
        embeddedPostgres: server.embedded,
        statementSource: monitor.statementsAvailable ? 'pg_stat_statements' : 'app',
        commitsFromWal: monitor.walInspectAvailable,
      },
      fill,
      scenarios: summaries,
      runs: runs.map(({ statementCalls: _detail, ...run }) => run),
      verdict: {
        targetsMet: targets.filter((target) => target.pass).length,
        targetsMissed: targets.filter((target) => !target.pass).length,
        duplicates,
        exactlyOnce: summaries.every((summary) => summary.exactlyOnce.ok),
      },
    };
    console.log(formatReport(results));
    const previous = findPrevious(resultsDir, results, config.compareWith);
    const path = writeResults(resultsDir, results);
    if (previous) {
      console.log(formatComparison(previous.path, previous.results, results));
    }
    console.log(`\nResults: ${path}`);
    return results.verdict.exactlyOnce ? 0 : 1;
  } finally {
    await cleanUp();
  }
}

/**
 * Starts the process with the apps the scenarios need: `main` (no global interceptor), `global`
 * (the idempotency interceptor registered globally), `pass` (a global interceptor that does
 * nothing), `part` (`main` on a partitioned idempotency table), `pool` (`main` with its lease
 * routes on `pgPoolStore()`), `cls` (`pool` with its transactional routes in nestjs-cls
 * transactions), `redis` (`main` with its lease
 * routes on the Redis store) and `peer` (`@node-idempotency/nestjs` on Redis) on the main
 * database, `full` on the pre-filled one. `main` comes first: it runs the main database's
 * migrations.
 */
function startApps(
  config: BenchConfig,
  server: BenchServer,
  needed: ReadonlySet<AppName>,
  redisUrl: string | null,
): Promise<BenchProcess> {
  const app = (
    name: AppName,
    databaseUrl: string,
    global: 'idempotency' | 'pass' | 'none',
    store: 'single' | 'partitioned' | 'pool' | 'cls' | 'redis' | 'peer' = 'single',
  ) => ({
    name,
    databaseUrl,
    globalInterceptor: global === 'idempotency',
    passThroughInterceptor: global === 'pass',
    partitioned: store === 'partitioned',
    pgPool: store === 'pool',
    clsTransactions: store === 'cls',
    redis:
      store === 'redis' || store === 'peer' ? redisOf(store === 'redis' ? 'ours' : 'peer') : null,
  });
  const redisOf = (of: 'ours' | 'peer') => {
    if (!redisUrl) {
      throw new Error('The Redis apps need the bench Redis server');
    }
    return { url: redisUrl, package: of };
  };
  const instances = (
    [
      ['main', () => app('main', server.urls.main, 'none')],
      ['global', () => app('global', server.urls.main, 'idempotency')],
      ['pass', () => app('pass', server.urls.main, 'pass')],
      ['full', () => app('full', server.urls.full, 'none')],
      ['part', () => app('part', server.urls.main, 'none', 'partitioned')],
      ['pool', () => app('pool', server.urls.main, 'none', 'pool')],
      ['cls', () => app('cls', server.urls.main, 'none', 'cls')],
      ['redis', () => app('redis', server.urls.main, 'none', 'redis')],
      ['peer', () => app('peer', server.urls.main, 'none', 'peer')],
    ] as [AppName, () => ReturnType<typeof app>][]
  )
    .filter(([name]) => needed.has(name))
    .map(([, make]) => make());
  return startBenchProcess(
    { adapter: config.adapter, poolSize: config.poolSize, instances },
    config.cpuProfileDir,
  );
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);

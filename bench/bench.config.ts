import { resolve } from 'node:path';

/** The package root: this file runs as dist/bench-build/bench/bench.config.js. */
export const PACKAGE_ROOT = resolve(__dirname, '../../..');

/** Everything a run is configured by: defaults, then environment, then command-line flags. */
export interface BenchConfig {
  /** A smoke run: one short round, a small pre-filled table; results go to a `.local.json` file. */
  quick: boolean;
  /** Length of one measured run of one scenario, in seconds. */
  seconds: number;
  /**
   * Unmeasured requests each app serves before the rounds, shared among its scenarios: JIT
   * compilation, pool connections, prepared statements and caches are warm when measuring starts.
   */
  warmupRequests: number;
  /** Length of the unmeasured run of a scenario right before each of its measured runs. */
  leadInSeconds: number;
  /** Measured runs per scenario; scenarios are interleaved across rounds. */
  rounds: number;
  /** Concurrent HTTP connections of the load generator. */
  connections: number;
  /** Size of each app's pg pool (`extra: { max }`). */
  poolSize: number;
  adapter: 'express' | 'fastify';
  /** Rows put into the idempotency table of the pre-filled database. */
  fillRows: number;
  /** Keys created before the replay scenarios and replayed round-robin. */
  replayKeys: number;
  /** Hot-duplicate scenarios: distinct keys per window, and requests per key in a window. */
  hotKeys: number;
  hotRequestsPerKey: number;
  /** Scenario ids to run (the baseline always runs); all when undefined. */
  only: readonly string[] | undefined;
  /** An existing server to use instead of an embedded one. */
  databaseUrl: string | undefined;
  /** Results file to compare with instead of the latest previous one. */
  compareWith: string | undefined;
  /** A directory for a V8 CPU profile of the apps' process (`node --cpu-prof`), written at exit. */
  cpuProfileDir: string | undefined;
  resultsDir: string;
}

export const BENCH_USAGE = `npm run bench -- [options]

  --quick                 smoke run: 1 round of 1 s, 20 000 pre-filled rows (results: *.local.json)
  --seconds=N             seconds per measured run           (BENCH_SECONDS, default 2)
  --rounds=N              measured rounds per scenario       (BENCH_ROUNDS, default 5)
  --connections=N         concurrent HTTP connections        (BENCH_CONNECTIONS, default 32)
  --fastify               Fastify instead of Express         (BENCH_ADAPTER=fastify)
  --fill-rows=N           rows of the pre-filled table       (BENCH_FILL_ROWS, default 1000000)
  --only=a,b              only these scenario ids, plus the baseline (BENCH_ONLY)
  --compare=FILE          compare with FILE instead of the latest previous results
  --cpu-prof=DIR          write a CPU profile of the apps' process into DIR (BENCH_CPU_PROF)
  DATABASE_URL=postgres://...   use this server instead of an embedded PostgreSQL`;

export function readBenchConfig(
  argv: readonly string[] = process.argv.slice(2),
  env: NodeJS.ProcessEnv = process.env,
): BenchConfig {
  const flags = new Map<string, string>();
  for (const arg of argv) {
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!match) {
      throw new Error(`Unknown argument "${arg}".\n\n${BENCH_USAGE}`);
    }
    flags.set(match[1], match[2] ?? 'true');
  }
  const known = [
    'quick',
    'seconds',
    'rounds',
    'connections',
    'fastify',
    'adapter',
    'fill-rows',
    'only',
    'compare',
    'cpu-prof',
    'help',
  ];
  for (const name of flags.keys()) {
    if (!known.includes(name)) {
      throw new Error(`Unknown option --${name}.\n\n${BENCH_USAGE}`);
    }
  }
  const quick = flags.has('quick');
  const setting = (flag: string, variable: string) => flags.get(flag) ?? env[variable];
  const adapter = flags.has('fastify')
    ? 'fastify'
    : (setting('adapter', 'BENCH_ADAPTER') ?? 'express');
  if (adapter !== 'express' && adapter !== 'fastify') {
    throw new Error(`The adapter must be "express" or "fastify", got "${adapter}".`);
  }
  const only = setting('only', 'BENCH_ONLY');
  return {
    quick,
    seconds: positive(setting('seconds', 'BENCH_SECONDS'), quick ? 1 : 2, 'seconds'),
    warmupRequests: quick ? 1_000 : 10_000,
    leadInSeconds: quick ? 0 : 0.5,
    rounds: integer(setting('rounds', 'BENCH_ROUNDS'), quick ? 1 : 5, 'rounds'),
    connections: integer(setting('connections', 'BENCH_CONNECTIONS'), 32, 'connections'),
    poolSize: 32,
    adapter,
    fillRows: integer(setting('fill-rows', 'BENCH_FILL_ROWS'), quick ? 20_000 : 1_000_000, 'fill'),
    replayKeys: quick ? 200 : 2_000,
    hotKeys: 8,
    hotRequestsPerKey: 8,
    only: only ? only.split(',').map((id) => id.trim()) : undefined,
    databaseUrl: env.DATABASE_URL || undefined,
    compareWith: flags.get('compare'),
    cpuProfileDir: setting('cpu-prof', 'BENCH_CPU_PROF') || undefined,
    resultsDir: resolve(PACKAGE_ROOT, 'bench/results'),
  };
}

export function wantsHelp(argv: readonly string[] = process.argv.slice(2)): boolean {
  return argv.includes('--help') || argv.includes('-h');
}

/** A positive number from a flag or variable, or `fallback` when it is unset or empty. */
export function positive(raw: string | undefined, fallback: number, name: string): number {
  if (raw === undefined || raw === '') {
    return fallback;
  }
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) {
    throw new Error(`${name} must be a positive number, got "${raw}".`);
  }
  return value;
}

/** A positive whole number from a flag or variable (see `positive`). */
export function integer(raw: string | undefined, fallback: number, name: string): number {
  const value = positive(raw, fallback, name);
  if (!Number.isSafeInteger(value)) {
    throw new Error(`${name} must be a whole number, got "${raw}".`);
  }
  return value;
}

import { resolve } from 'node:path';
import { IDEMPOTENCY_DEFAULTS } from '../../lib/idempotency-options.defaults';
import { PACKAGE_ROOT, integer, positive } from '../bench.config';

/** What a purge bench run is configured by: defaults, then command-line flags. */
export interface PurgeBenchConfig {
  /** A smoke run: a tiny table, short slices; results go to a `.local.json` file. */
  quick: boolean;
  /** Rows in the table before each batch size's purge. */
  rows: number;
  /** Share of those rows that have expired (the backlog the purge works off). */
  expiredShare: number;
  /** Batch sizes to measure, each on a freshly filled table. */
  batchSizes: number[];
  /** Concurrent claim workers (each one pooled connection). */
  workers: number;
  /** Claims/s the workers aim at together; 0 runs them back to back. */
  rate: number;
  /** Share of the workers' claims that replay a live key (the others claim and complete new keys). */
  replayShare: number;
  /** Length of each purge window; a window without purge of the same length follows each. */
  sliceMs: number;
  /** Claims run this long before the first window (pool connections, prepared statements). */
  warmupMs: number;
  /** Rows in random physical order instead of the order they expire in (worst case for WAL). */
  scattered: boolean;
  /** An existing server to use instead of an embedded one. */
  databaseUrl: string | undefined;
  resultsDir: string;
}

export const PURGE_BENCH_USAGE = `node dist/bench-build/bench/purge/main.js [options]

  --rows=N            rows in the table before each purge        (default 1000000; --quick 20000)
  --expired-share=F   share of them already expired              (default 0.5)
  --batch=a,b,...     batch sizes, each on a fresh table         (default ${defaultBatchSizes(false).join(',')})
  --workers=N         concurrent claim workers                   (default 16)
  --rate=N            claims/s of all workers together, 0 = flat out (default 0)
  --scattered         expired rows spread over the whole heap instead of in expiry order
  --quick             smoke run: 20 000 rows, short windows (results: *.local.json)
  DATABASE_URL=postgres://...   use this server instead of an embedded PostgreSQL`;

const FLAGS = ['rows', 'expired-share', 'batch', 'workers', 'rate', 'scattered', 'quick', 'help'];

/** Reads the flags; throws with the usage on an unknown or malformed one. */
export function readPurgeBenchConfig(
  argv: readonly string[] = process.argv.slice(2),
  env: NodeJS.ProcessEnv = process.env,
): PurgeBenchConfig {
  const flags = new Map<string, string>();
  for (const arg of argv) {
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!match || !FLAGS.includes(match[1])) {
      throw new Error(`Unknown argument "${arg}".\n\n${PURGE_BENCH_USAGE}`);
    }
    flags.set(match[1], match[2] ?? 'true');
  }
  const quick = flags.has('quick');
  const expiredShare = positive(flags.get('expired-share'), 0.5, 'expired-share');
  if (expiredShare >= 1) {
    throw new Error('expired-share must be below 1: the claims replay live rows.');
  }
  const batch = flags.get('batch');
  return {
    quick,
    rows: integer(flags.get('rows'), quick ? 20_000 : 1_000_000, 'rows'),
    expiredShare,
    batchSizes: batch
      ? batch
          .split(',')
          .filter((size) => size.trim() !== '')
          .map((size) => integer(size.trim(), 0, 'batch'))
      : defaultBatchSizes(quick),
    workers: integer(flags.get('workers'), 16, 'workers'),
    rate: flags.get('rate') === '0' ? 0 : integer(flags.get('rate'), 0, 'rate'),
    replayShare: 0.5,
    sliceMs: quick ? 200 : 500,
    warmupMs: quick ? 500 : 3_000,
    scattered: flags.has('scattered'),
    databaseUrl: env.DATABASE_URL || undefined,
    resultsDir: resolve(PACKAGE_ROOT, 'bench/results'),
  };
}

export function wantsHelp(argv: readonly string[] = process.argv.slice(2)): boolean {
  return argv.includes('--help') || argv.includes('-h');
}

/** The library's default batch and larger ones (a quick run's backlog is a few batches at most). */
function defaultBatchSizes(quick: boolean): number[] {
  const sizes = [IDEMPOTENCY_DEFAULTS.purgeBatchSize, ...(quick ? [5_000] : [10_000, 50_000])];
  return [...new Set(sizes)].sort((a, b) => a - b);
}

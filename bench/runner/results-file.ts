import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import type { BenchConfig } from '../bench.config';
import type { FillResult } from './fill';
import type { RunMeasurement } from './measurement';
import type { ScenarioSummary } from './summary';

/** Bumped when the shape changes so that an old file is not misread. */
export const RESULTS_FORMAT = 1;

/** The results file of one run. */
export interface BenchResults {
  format: number;
  startedAt: string;
  finishedAt: string;
  settings: Omit<BenchConfig, 'databaseUrl' | 'compareWith' | 'cpuProfileDir' | 'resultsDir'>;
  environment: {
    node: string;
    postgres: string;
    embeddedPostgres: boolean;
    /** Where `perRequest.statements` comes from. */
    statementSource: 'pg_stat_statements' | 'app';
    /** Whether `perRequest.commits` could be counted (from the WAL, with `pg_walinspect`). */
    commitsFromWal: boolean;
    cpus: number;
    cpuModel: string;
    memoryGiB: number;
    /** 1, 5 and 15 minute load averages when the run started: others' work on the machine. */
    loadAverageAtStart: number[];
    gitCommit: string | null;
    /** Whether the work tree had uncommitted changes (the results may not match the commit). */
    gitDirty: boolean | null;
  };
  fill: FillResult | null;
  scenarios: ScenarioSummary[];
  /** Every measured run, without its per-statement detail (summed in `scenarios`). */
  runs: Omit<RunMeasurement, 'statementCalls'>[];
  verdict: { targetsMet: number; targetsMissed: number; duplicates: number; exactlyOnce: boolean };
}

/** What is known about the machine before the run starts. */
export function describeEnvironment(): Omit<
  BenchResults['environment'],
  'postgres' | 'embeddedPostgres' | 'statementSource' | 'commitsFromWal'
> {
  return {
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    loadAverageAtStart: loadavg().map((load) => Math.round(load * 100) / 100),
    gitCommit: git(['rev-parse', '--short', 'HEAD']),
    gitDirty: ((status) => (status === null ? null : status.length > 0))(
      git(['status', '--porcelain']),
    ),
  };
}

/** Writes `<dir>/<start time>.json` (`.local.json` for quick runs; git ignores the folder). */
export function writeResults(dir: string, results: BenchResults): string {
  mkdirSync(dir, { recursive: true });
  const stamp = results.startedAt.replace(/[:.]/g, '-');
  const path = join(dir, `${stamp}${results.settings.quick ? '.local' : ''}.json`);
  writeFileSync(path, `${JSON.stringify(results, null, 2)}\n`);
  return path;
}

/**
 * The latest earlier results of a comparable run (same kind: quick or not, same HTTP adapter and
 * connection count), or the given file.
 */
export function findPrevious(
  dir: string,
  current: BenchResults,
  explicit: string | undefined,
): { path: string; results: BenchResults } | null {
  if (explicit) {
    return { path: explicit, results: readResults(explicit) };
  }
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return null;
  }
  const candidates = names
    .filter(
      (name) => name.endsWith('.json') && name.endsWith('.local.json') === current.settings.quick,
    )
    .sort()
    .reverse();
  for (const name of candidates) {
    try {
      const results = readResults(join(dir, name));
      if (
        results.startedAt < current.startedAt &&
        results.settings.adapter === current.settings.adapter &&
        results.settings.connections === current.settings.connections
      ) {
        return { path: join(dir, name), results };
      }
    } catch {
      // Not a results file of this format: skip it.
    }
  }
  return null;
}

function readResults(path: string): BenchResults {
  const results = JSON.parse(readFileSync(path, 'utf8')) as BenchResults;
  if (results.format !== RESULTS_FORMAT) {
    throw new Error(`${path}: results format ${results.format}, expected ${RESULTS_FORMAT}`);
  }
  return results;
}

function git(args: string[]): string | null {
  try {
    return execFileSync('git', args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return null;
  }
}

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeEnvironment } from '../runner/results-file';
import type { PurgeBenchConfig } from './purge-bench.config';
import type { PhaseResult } from './purge-phase';

/** Bumped when the shape changes so that an old file is not misread. */
export const PURGE_RESULTS_FORMAT = 1;

/** The results file of one purge bench run. */
export interface PurgeResults {
  format: number;
  kind: 'purge';
  startedAt: string;
  finishedAt: string;
  settings: Omit<PurgeBenchConfig, 'databaseUrl' | 'resultsDir'>;
  environment: ReturnType<typeof describeEnvironment> & {
    postgres: string;
    embeddedPostgres: boolean;
    /** Whether the purge statement's own WAL could be read (pg_stat_statements). */
    statementStats: boolean;
  };
  phases: PhaseResult[];
  /** Every phase left exactly the expected live rows and no expired one. */
  ok: boolean;
}

/** Writes `<dir>/purge-<start time>.json` (`.local.json` for quick runs; git ignores the folder). */
export function writePurgeResults(dir: string, results: PurgeResults): string {
  mkdirSync(dir, { recursive: true });
  const stamp = results.startedAt.replace(/[:.]/g, '-');
  const path = join(dir, `purge-${stamp}${results.settings.quick ? '.local' : ''}.json`);
  // A latency with no sample is NaN, which JSON.stringify writes as null.
  writeFileSync(path, `${JSON.stringify(results, null, 2)}\n`);
  return path;
}

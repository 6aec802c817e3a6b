import 'reflect-metadata';
import { describeEnvironment } from '../runner/results-file';
import { PURGE_BENCH_USAGE, readPurgeBenchConfig, wantsHelp } from './purge-bench.config';
import { type PhaseResult, runPurgePhase } from './purge-phase';
import { formatPurgeReport } from './purge-report';
import { PURGE_RESULTS_FORMAT, type PurgeResults, writePurgeResults } from './purge-results';
import { PurgeServer } from './purge-server';

/**
 * The purge bench: for each batch size, fills a fresh table with an expired backlog and works it
 * off through the store's purgeExpired while claim workers run, comparing the claims in windows
 * with and without purge. Prints the tables and writes bench/results/purge-<start time>.json.
 * Exits 1 when a phase left other live rows than expected, or expired ones.
 */
async function main(): Promise<number> {
  if (wantsHelp()) {
    console.log(PURGE_BENCH_USAGE);
    return 0;
  }
  const config = readPurgeBenchConfig();
  const startedAt = new Date().toISOString();
  const environment = describeEnvironment();
  const log = (line: string) => console.error(`[bench:purge] ${line}`);

  log(config.databaseUrl ? 'using DATABASE_URL' : 'starting an embedded PostgreSQL');
  const server = await PurgeServer.start(config.databaseUrl);
  const stop = () => server.stop().catch((error: unknown) => log(`cleanup: ${String(error)}`));
  process.once('SIGINT', () => void stop().finally(() => process.exit(130)));
  try {
    const phases: PhaseResult[] = [];
    for (const batchSize of config.batchSizes) {
      phases.push(await runPurgePhase(config, server, batchSize, log));
    }
    const { databaseUrl: _url, resultsDir, ...settings } = config;
    const results: PurgeResults = {
      format: PURGE_RESULTS_FORMAT,
      kind: 'purge',
      startedAt,
      finishedAt: new Date().toISOString(),
      settings,
      environment: {
        ...environment,
        postgres: server.version,
        embeddedPostgres: server.embedded,
        statementStats: server.statementsAvailable,
      },
      phases,
      ok: phases.every((phase) => phase.check.ok),
    };
    console.log(formatPurgeReport(results));
    console.log(`\nResults: ${writePurgeResults(resultsDir, results)}`);
    return results.ok ? 0 : 1;
  } finally {
    await stop();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);

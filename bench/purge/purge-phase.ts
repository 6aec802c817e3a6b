import { setTimeout as sleep } from 'node:timers/promises';
import { DataSource } from 'typeorm';
import { TICK_BUDGET_SHARE } from '../../lib/idempotency-purger.service';
import { PostgresIdempotencyStore } from '../../lib/postgres/typeorm/postgres-idempotency.store';
import { ClaimRecorder, ClaimWorkers } from './claim-workers';
import { FrontProbe } from './front-probe';
import { type LatencySummary, summarizeLatency } from './latency';
import type { PurgeBenchConfig } from './purge-bench.config';
import { type PurgeFillResult, fillPurgeTable, liveFilledKeys } from './purge-fill';
import { type PurgeBatch, type PurgeRun, purgeInWindows } from './purge-windows';
import type { PurgeServer, PurgeStatementStats } from './purge-server';
import { type WaitObservation, WaitSampler } from './wait-sampler';
import { type WindowSideStats, windowStats } from './window-stats';

/** What one batch size did to one freshly filled table. */
export interface PhaseResult {
  batchSize: number;
  fill: PurgeFillResult;
  purge: {
    deletedRows: number;
    /** Calls that deleted rows (the last, empty one left out). */
    batches: number;
    /** Time inside purgeExpired, summed. */
    seconds: number;
    rowsPerSecond: number;
    batchMs: LatencySummary;
    /** Mean batch time in the first and the last tenth of the batches. */
    firstTenthMs: number;
    lastTenthMs: number;
    /** The purge statement's own counters (pg_stat_statements); `null` without it. */
    statement: PurgeStatementStats | null;
    /**
     * What the library's purger can delete per second at this batch size: it deletes at this
     * phase's rate for TICK_BUDGET_SHARE of every interval while batches come back full.
     */
    purgerCeilingRowsPerSecond: number;
  };
  claims: { withPurge: WindowSideStats; withoutPurge: WindowSideStats; leftOut: number };
  /** Live rows after the purge must be the filled live ones plus every claimed key. */
  check: { liveRowsExpected: number; liveRowsFound: number; expiredRowsLeft: number; ok: boolean };
  /** The VACUUM that follows the purge (autovacuum is off for the table during the run). */
  vacuum: { seconds: number; walBytes: number; tableBytesBefore: number; tableBytesAfter: number };
}

/**
 * Fills the table, starts the claim workers and the front probe, works off the backlog in
 * alternating windows with and without purge, then checks the live rows and vacuums.
 */
export async function runPurgePhase(
  config: PurgeBenchConfig,
  server: PurgeServer,
  batchSize: number,
  log: (line: string) => void,
): Promise<PhaseResult> {
  log(`batch ${batchSize}: filling ${config.rows.toLocaleString('en')} rows`);
  const fill = await fillPurgeTable(server.url, config.rows, config.expiredShare, config.scattered);
  log(`batch ${batchSize}: filled in ${fill.seconds.toFixed(1)} s, purging`);

  // The store as the library builds it: on a TypeORM DataSource, borrowing its pg pool (one
  // connection per worker, and one for the purge, which shares the pool as the purger does).
  const dataSource = await dataSourceOf(server.url, config.workers + 1);
  const probeSource = await dataSourceOf(server.url, 1);
  try {
    const store = new PostgresIdempotencyStore(dataSource);
    const probeStore = new PostgresIdempotencyStore(probeSource);
    const recorder = new ClaimRecorder();
    const workers = new ClaimWorkers(store, recorder, {
      workers: config.workers,
      rate: config.rate,
      replayShare: config.replayShare,
      replayKeys: liveFilledKeys(config.rows, config.expiredShare, 2_000),
    });
    const probe = new FrontProbe(probeSource, probeStore, recorder, Math.min(batchSize, 1_000));
    const sampler = new WaitSampler(server.sampler, server.database, await probe.backendPid());

    workers.start();
    probe.start();
    let run: PurgeRun;
    let statements: [PurgeStatementStats | null, PurgeStatementStats | null];
    let observations: WaitObservation[];
    try {
      await sleep(config.warmupMs);
      sampler.start();
      const before = await server.purgeStatement();
      run = await purgeInWindows({
        store,
        batchSize,
        sliceMs: config.sliceMs,
        mark: () => server.mark(),
        backlogLeft: () => expiredRowsLeft(dataSource).then((left) => left > 0),
        timeoutMs: 30 * 60_000,
      });
      statements = [before, await server.purgeStatement()];
    } finally {
      observations = await sampler.stop();
      await Promise.all([workers.stop(), probe.stop()]);
    }

    const check = await checkLiveRows(dataSource, fill, recorder.claimedKeys);
    const vacuum = await server.vacuum();
    return {
      batchSize,
      fill,
      purge: purgeStats(run.batches, ...statements),
      claims: windowStats(run.windows, recorder.samples, observations),
      check,
      vacuum,
    };
  } finally {
    await Promise.all([dataSource.destroy(), probeSource.destroy()]);
  }
}

function purgeStats(
  batches: readonly PurgeBatch[],
  before: PurgeStatementStats | null,
  after: PurgeStatementStats | null,
): PhaseResult['purge'] {
  const deleting = batches.filter((batch) => batch.deleted > 0);
  const ms = deleting.map((batch) => batch.endMs - batch.startMs);
  const deletedRows = deleting.reduce((sum, batch) => sum + batch.deleted, 0);
  const seconds = ms.reduce((sum, value) => sum + value, 0) / 1000;
  const tenth = Math.max(1, Math.floor(ms.length / 10));
  const mean = (values: number[]) => values.reduce((sum, v) => sum + v, 0) / values.length;
  return {
    deletedRows,
    batches: deleting.length,
    seconds,
    rowsPerSecond: deletedRows / seconds,
    batchMs: summarizeLatency(ms),
    firstTenthMs: mean(ms.slice(0, tenth)),
    lastTenthMs: mean(ms.slice(-tenth)),
    statement:
      before && after
        ? {
            calls: after.calls - before.calls,
            execMs: after.execMs - before.execMs,
            walRecords: after.walRecords - before.walRecords,
            walFpi: after.walFpi - before.walFpi,
            walBytes: after.walBytes - before.walBytes,
          }
        : null,
    purgerCeilingRowsPerSecond: (deletedRows / seconds) * TICK_BUDGET_SHARE,
  };
}

async function checkLiveRows(
  dataSource: DataSource,
  fill: PurgeFillResult,
  claimedKeys: number,
): Promise<PhaseResult['check']> {
  const rows = (await dataSource.query(
    `SELECT count(*) FILTER (WHERE expires_at > now())::int AS live,
            count(*) FILTER (WHERE expires_at <= now())::int AS expired
       FROM idempotency_records`,
  )) as { live: number; expired: number }[];
  const liveRowsExpected = fill.rows - fill.expiredRows + claimedKeys;
  return {
    liveRowsExpected,
    liveRowsFound: rows[0].live,
    expiredRowsLeft: rows[0].expired,
    ok: rows[0].live === liveRowsExpected && rows[0].expired === 0,
  };
}

async function expiredRowsLeft(dataSource: DataSource): Promise<number> {
  const rows = (await dataSource.query(
    'SELECT count(*)::int AS left FROM idempotency_records WHERE expires_at <= now()',
  )) as { left: number }[];
  return rows[0].left;
}

async function dataSourceOf(url: string, poolSize: number): Promise<DataSource> {
  const dataSource = new DataSource({
    type: 'postgres',
    url,
    logging: false,
    // Connections stay open for the whole phase, as under steady load.
    extra: { max: poolSize, idleTimeoutMillis: 0 },
  });
  return dataSource.initialize();
}

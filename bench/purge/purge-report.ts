import type { LatencySummary } from './latency';
import type { PhaseResult } from './purge-phase';
import type { WindowSideStats } from './window-stats';
import type { PurgeResults } from './purge-results';

/** The run's tables, as printed at its end. */
export function formatPurgeReport(results: PurgeResults): string {
  const { settings, environment } = results;
  const lines = [
    `nestjs-idempotency purge bench: ${settings.rows.toLocaleString('en')} rows, ` +
      `${Math.round(settings.expiredShare * 100)}% expired (${settings.scattered ? 'scattered' : 'in expiry order'}), ` +
      `${settings.workers} claim workers ${settings.rate > 0 ? `at ${settings.rate} claims/s` : 'flat out'}, ` +
      `${settings.replayShare * 100}% replays, windows of ${settings.sliceMs / 1000} s`,
    `${environment.postgres.split(' ').slice(0, 2).join(' ')} ` +
      `(${environment.embeddedPostgres ? 'embedded' : 'DATABASE_URL'}); node ${environment.node}, ` +
      `${environment.cpus} CPUs, load average at start ${environment.loadAverageAtStart.join(' ')}`,
    '',
    'Purge: PostgresIdempotencyStore.purgeExpired(batch) back to back until no expired row is left.',
    'rows/s = rows / time inside purgeExpired. WAL and FPI per row: the purge statement alone',
    '(pg_stat_statements). ceiling = what the library purger deletes at most at this batch size',
    '(this rate for half of every interval). VACUUM: the one run after the purge, s and WAL MB.',
    table(
      [
        'batch',
        'rows',
        'rows/s',
        'ms/batch p50',
        'p99',
        'max',
        '1st/last 10%',
        'WAL B/row',
        'FPI/row',
        'ceiling/s',
        'VACUUM s/MB',
      ],
      results.phases.map((phase) => {
        const { purge, vacuum } = phase;
        const perRow = (value: number | undefined, digits: number) =>
          value === undefined ? 'n/a' : (value / purge.deletedRows).toFixed(digits);
        return [
          String(phase.batchSize),
          purge.deletedRows.toLocaleString('en'),
          purge.rowsPerSecond.toFixed(0),
          ms(purge.batchMs.p50),
          ms(purge.batchMs.p99),
          ms(purge.batchMs.max),
          `${ms(purge.firstTenthMs)}/${ms(purge.lastTenthMs)}`,
          perRow(purge.statement?.walBytes, 0),
          perRow(purge.statement?.walFpi, 3),
          purge.purgerCeilingRowsPerSecond.toFixed(0),
          `${vacuum.seconds.toFixed(1)}/${(vacuum.walBytes / 2 ** 20).toFixed(1)}`,
        ];
      }),
    ),
    '',
    'Claims during the purge windows vs the interleaved windows without purge (same total length).',
    'claims = claims of new keys + replays; front = claims of expired keys at the head of the purge',
    'order. "on purge" = sampled claim backends waiting on a lock the purge held (must be 0).',
    table(
      [
        'batch',
        's each',
        'claims/s with/without',
        'p50 ms',
        'p99 ms',
        'max ms',
        'front p50/max ms',
        'on purge',
        'WAL MB/s',
        'pg cores',
      ],
      results.phases.map((phase) => {
        const { withPurge: on, withoutPurge: off } = phase.claims;
        return [
          String(phase.batchSize),
          on.seconds.toFixed(1),
          `${on.claimsPerSecond.toFixed(0)}/${off.claimsPerSecond.toFixed(0)} (${(on.claimsPerSecond / off.claimsPerSecond).toFixed(2)})`,
          pair(on.claimMs.p50, off.claimMs.p50),
          pair(on.claimMs.p99, off.claimMs.p99),
          pair(on.claimMs.max, off.claimMs.max),
          `${front(on.latencyMs.front)} / ${front(off.latencyMs.front)}`,
          `${on.waits.claimsBlockedByPurge} (front ${on.waits.frontBlockedByPurge})`,
          pair(on.walBytesPerSecond / 2 ** 20, off.walBytesPerSecond / 2 ** 20),
          on.postgresCores === null || off.postgresCores === null
            ? 'n/a'
            : pair(on.postgresCores, off.postgresCores, 2),
        ];
      }),
    ),
    '',
    "Sampled states of the claim workers' backends (pg_stat_activity every 20 ms), with / without purge:",
    ...results.phases.map(
      (phase) =>
        `  batch ${phase.batchSize}: ${waitsText(phase.claims.withPurge)} / ${waitsText(phase.claims.withoutPurge)}`,
    ),
    '',
    ...results.phases.map(checkLine),
  ];
  return lines.join('\n');
}

function checkLine(phase: PhaseResult): string {
  const { check, claims } = phase;
  const bad = claims.withPurge.unexpected + claims.withPurge.errors;
  const badOff = claims.withoutPurge.unexpected + claims.withoutPurge.errors;
  return (
    `batch ${phase.batchSize}: ${check.ok ? 'ok' : 'FAILED'}: live rows ${check.liveRowsFound} ` +
    `(expected ${check.liveRowsExpected}), expired left ${check.expiredRowsLeft}; ` +
    `unexpected results or errors ${bad} with purge, ${badOff} without; ` +
    `new keys/s in the purge windows ${(claims.withPurge.latencyMs.new.count / claims.withPurge.seconds).toFixed(0)}`
  );
}

/** The three most frequent states, as shares of the samples. */
function waitsText(side: WindowSideStats): string {
  const { samples, byWait } = side.waits;
  const top = Object.entries(byWait)
    .slice(0, 3)
    .map(([wait, count]) => `${wait} ${Math.round((100 * count) / samples)}%`);
  const locks = Object.entries(byWait)
    .filter(([wait]) => wait.startsWith('Lock:'))
    .reduce((sum, [, count]) => sum + count, 0);
  return `${top.join(', ')}, Lock:* ${locks} of ${samples}`;
}

function front(latency: LatencySummary): string {
  return `${ms(latency.p50)}/${ms(latency.max)}`;
}

function pair(on: number, off: number, digits = 1): string {
  return `${on.toFixed(digits)}/${off.toFixed(digits)}`;
}

function ms(value: number): string {
  return Number.isNaN(value) ? '-' : value.toFixed(value < 10 ? 1 : 0);
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((title, i) =>
    Math.max(title.length, ...rows.map((row) => row[i].length)),
  );
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i])))
      .join('  ');
  return [line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)]
    .map((text) => `  ${text}`)
    .join('\n');
}

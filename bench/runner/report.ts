import type { BenchResults } from './results-file';
import type { ScenarioSummary } from './summary';

/** The run's tables, as printed at its end. */
export function formatReport(results: BenchResults): string {
  const { settings, environment } = results;
  const lines: string[] = [];
  lines.push(
    `nestjs-idempotency bench: ${settings.adapter}, ${settings.connections} connections, ` +
      `${settings.rounds} round(s) x ${settings.seconds} s per scenario, pool ${settings.poolSize}`,
    `PostgreSQL ${shortVersion(environment.postgres)} (${environment.embeddedPostgres ? 'embedded' : 'DATABASE_URL'}), ` +
      `statements from ${environment.statementSource}, commits ${environment.commitsFromWal ? 'from the WAL' : 'n/a'}; ` +
      `node ${environment.node}, ` +
      `${environment.cpus} CPUs, load average at start ${environment.loadAverageAtStart.join(' ')}`,
  );
  if (results.fill) {
    const fill = results.fill;
    lines.push(
      `Pre-filled table: ${fill.rows.toLocaleString('en')} rows (${fill.expiredRows.toLocaleString('en')} expired), ` +
        `${(fill.totalBytes / 2 ** 20).toFixed(0)} MiB with indexes, filled in ${fill.seconds.toFixed(1)} s`,
    );
  }

  lines.push(
    '',
    "Throughput: req/s, p50 and p99 are medians over the runs. ratio = a run's req/s over the mean of",
    'the baseline (a) runs just before and after it, median [lowest-highest] over the rounds; for (a)',
    'itself that spread is the noise floor. A target is judged on the median; "within 10% of X" takes',
    "the ratio to X's run in the same round. by CPU = the ratio that the server's CPU per request",
    "predicts (app + PostgreSQL + Redis CPU per request of the neighbouring (a) runs over this run's):",
    'steadier on a shared machine, but blind to waits (commit flushes, locks, polling). An "app CPU"',
    "target takes the app process's CPU per request over that of the neighbouring (a) runs: lower is",
    'better, and its ratio is shown in the last-but-one column.',
  );
  lines.push(
    table(
      [
        '',
        'scenario',
        'route',
        'req/s',
        'p50 ms',
        'p99 ms',
        'ratio to (a)',
        'by CPU',
        'target',
        'ratio',
        '',
      ],
      results.scenarios.flatMap((s) => {
        const first = [
          s.item,
          s.id,
          `${s.app} ${s.route}`,
          s.rps.toFixed(0),
          s.p50Ms.toFixed(1),
          s.p99Ms.toFixed(1),
          s.ratio ? spreadText(s.ratio) : '',
          s.cpuRatio ? s.cpuRatio.median.toFixed(2) : 'n/a',
        ];
        if (s.targets.length === 0) {
          return [[...first, '', '', '']];
        }
        return s.targets.map((target, index) => [
          ...(index === 0 ? first : first.map(() => '')),
          target.text,
          // A throughput ratio to (a) is the row's own ratio column already.
          target.against === 'plain' && target.measure === 'throughput'
            ? ''
            : spreadText(target.ratio),
          target.pass ? 'PASS' : 'MISS',
        ]);
      }),
      [false, false, false, true, true, true, false, true, false, false, false],
    ),
  );

  lines.push(
    '',
    'Cost per request: counter deltas summed over the rounds, divided by the requests sent.',
    'stmts = statements PostgreSQL ran for the database (app = counted in the app process);',
    'commits = commit records in the WAL (durable commits: each waits for a WAL flush; read-only',
    'transactions write none); xids = transaction ids taken (writing transactions and writing',
    'subtransactions, i.e. SAVEPOINTs); WAL B = bytes of WAL; CPU in ms of each process.',
  );
  lines.push(
    table(
      [
        'scenario',
        'stmts',
        'app',
        'commits',
        'xids',
        'WAL B',
        'CPU app',
        'CPU pg',
        'CPU redis',
        'CPU load',
        'CPU sum',
      ],
      results.scenarios.map((s) => {
        const cost = s.perRequest;
        const cpu = cost.cpuMs;
        return [
          s.id,
          cost.statements === null ? 'n/a' : cost.statements.toFixed(2),
          cost.appStatements.toFixed(2),
          cost.commits === null ? 'n/a' : cost.commits.toFixed(2),
          cost.xids.toFixed(2),
          cost.walBytes.toFixed(0),
          cpu.app.toFixed(3),
          cpu.postgres === null ? 'n/a' : cpu.postgres.toFixed(3),
          cpu.redis === null ? 'n/a' : cpu.redis.toFixed(3),
          cpu.loadGenerator.toFixed(3),
          cpuSum(s).toFixed(3),
        ];
      }),
      [false, true, true, true, true, true, true, true, true, true, true],
    ),
  );

  lines.push(
    '',
    'Exactly once, checked after every run and summed: keys = distinct keys sent (for replays, the',
    'prepared keys); executed = keys with a row in bench_orders; dup = rows beyond the first of a',
    'key; lost = keys answered 2xx without a row; stuck = records left in_flight; dup rec = live',
    'idempotency records beyond the first of a key (a partitioned table has no unique index to',
    'refuse them). All four must be 0.',
  );
  lines.push(
    table(
      [
        'scenario',
        'sent',
        '2xx',
        'replayed',
        '409',
        'other',
        'errors',
        'keys',
        'executed',
        'rows',
        'dup',
        'lost',
        'stuck',
        'dup rec',
        '',
      ],
      results.scenarios.map((s) => {
        const t = s.totals;
        const c = s.exactlyOnce;
        const other = Object.entries(t.statusOther).map(([status, n]) => `${n}x${status}`);
        return [
          s.id,
          String(t.sent),
          String(t.status2xx),
          String(t.replayed),
          String(t.status409),
          other.length > 0 ? other.join(' ') : '0',
          String(t.errors),
          String(c.keysSent),
          String(c.keysExecuted),
          String(c.rows),
          String(c.duplicates),
          String(c.acknowledgedWithoutRow),
          String(c.stuckInFlight),
          String(c.duplicateRecords),
          c.ok ? 'OK' : 'FAIL',
        ];
      }),
      [false, true, true, true, true, true, true, true, true, true, true, true, true, true, false],
    ),
  );

  const breakdown = results.scenarios.filter((s) => s.statementsPerRequest);
  if (breakdown.length > 0) {
    lines.push(
      '',
      'Statements per request, by statement (pg_stat_statements, normalised), with the mean',
      'execution time of one call in the server (waits for commit flushes not included):',
    );
    for (const s of breakdown) {
      lines.push(`  ${s.id}`);
      for (const statement of (s.statementsPerRequest ?? []).filter((x) => x.perRequest >= 0.005)) {
        const calls = statement.perRequest.toFixed(2).padStart(6);
        const ms = `${statement.msPerCall.toFixed(3)} ms`.padStart(10);
        lines.push(`    ${calls}  ${ms}  ${statement.query}`);
      }
    }
  }

  const withAdded = results.scenarios.filter((s) => s.addedMs);
  if (withAdded.length > 0) {
    lines.push(
      '',
      "Latency added over (a), in ms: a run's p50 and p99 minus the mean of those of the (a) runs",
      'next to it, median [lowest-highest] over the rounds; for (a) itself, the noise floor. At full',
      'load (closed loop), so a slower scenario also queues longer: its cost at saturation, not on an',
      'idle server.',
    );
    lines.push(
      table(
        ['scenario', '+p50 ms', '+p99 ms'],
        withAdded.map((s) => [s.id, signedSpread(s.addedMs?.p50), signedSpread(s.addedMs?.p99)]),
        [false, true, true],
      ),
    );
  }

  const verdict = results.verdict;
  lines.push(
    '',
    `Targets: ${verdict.targetsMet} met, ${verdict.targetsMissed} missed. ` +
      `Duplicate executions: ${verdict.duplicates}. Exactly once: ${verdict.exactlyOnce ? 'yes' : 'NO'}.`,
  );
  return lines.join('\n');
}

/** The change from an earlier results file, scenario by scenario. */
export function formatComparison(
  previousPath: string,
  previous: BenchResults,
  current: BenchResults,
): string {
  const lines = [
    '',
    `Change vs ${previousPath} (${previous.startedAt}, commit ${previous.environment.gitCommit ?? '?'}` +
      `${previous.environment.gitDirty ? ' dirty' : ''}, ${previous.settings.rounds} x ${previous.settings.seconds} s).`,
    'req/s moves with the machine; the ratios to (a) and the per-request counts are the comparable ones.',
  ];
  const before = new Map(previous.scenarios.map((s) => [s.id, s]));
  lines.push(
    table(
      ['scenario', 'req/s', 'ratio to (a)', 'p99 ms', 'stmts/req', 'commits/req', 'CPU sum ms'],
      current.scenarios.flatMap((now) => {
        const old = before.get(now.id);
        if (!old) {
          return [];
        }
        return [
          [
            now.id,
            change(old.rps, now.rps, 0, true),
            change(old.ratio?.median, now.ratio?.median, 2, false),
            change(old.p99Ms, now.p99Ms, 1, true),
            change(old.perRequest.statements, now.perRequest.statements, 2, false),
            change(old.perRequest.commits, now.perRequest.commits, 2, false),
            change(cpuSum(old), cpuSum(now), 3, true),
          ],
        ];
      }),
      [false, false, false, false, false, false, false],
    ),
  );
  return lines.join('\n');
}

function cpuSum(s: ScenarioSummary): number {
  const cpu = s.perRequest.cpuMs;
  return cpu.app + (cpu.postgres ?? 0) + (cpu.redis ?? 0) + cpu.loadGenerator;
}

function change(
  before: number | null | undefined,
  after: number | null | undefined,
  digits: number,
  percent: boolean,
): string {
  if (before === null || before === undefined || after === null || after === undefined) {
    return 'n/a';
  }
  const delta = percent
    ? ` (${after >= before ? '+' : ''}${(((after - before) / before) * 100).toFixed(1)}%)`
    : '';
  return `${before.toFixed(digits)} -> ${after.toFixed(digits)}${delta}`;
}

function spreadText(spread: { median: number; min: number; max: number }): string {
  return `${spread.median.toFixed(2)} [${spread.min.toFixed(2)}-${spread.max.toFixed(2)}]`;
}

/** `+1.0 [-0.5 to +2.0]`: a difference with its spread. */
function signedSpread(spread: { median: number; min: number; max: number } | undefined): string {
  if (!spread) {
    return 'n/a';
  }
  const signed = (value: number) => `${value >= 0 ? '+' : ''}${value.toFixed(1)}`;
  return `${signed(spread.median)} [${signed(spread.min)} to ${signed(spread.max)}]`;
}

function shortVersion(version: string): string {
  return /^PostgreSQL (\S+)/.exec(version)?.[1] ?? version;
}

/** Columns padded to their widest cell; `right[i]` aligns column i to the right. */
function table(header: string[], rows: string[][], right: boolean[]): string {
  const widths = header.map((title, i) =>
    Math.max(title.length, ...rows.map((row) => row[i].length)),
  );
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (right[i] ? cell.padStart(widths[i]) : cell.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)]
    .map((text) => `  ${text}`)
    .join('\n');
}

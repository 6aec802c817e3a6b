import { type ExactlyOnceCheck, addChecks } from './exactly-once';
import type { LoadOutcome } from './load';
import type { RunCosts, RunMeasurement } from './measurement';
import { BASELINE, type Scenario } from './scenarios';
import { type Spread, median, spread } from './statistics';

/** A target from the issue and how this run did against it. */
export interface TargetResult {
  text: string;
  against: string;
  measure: 'throughput' | 'app-cpu';
  /** Lowest acceptable ratio of throughput; highest acceptable ratio of app CPU. */
  bound: number;
  /** Per-round ratios of the scenario to `against`: median, lowest, highest. */
  ratio: Spread;
  pass: boolean;
}

/** Per request: a run's deltas summed over the rounds, divided by the requests sent. */
export type PerRequestCost = RunCosts;

/** One normalised statement's share of a scenario. */
export interface StatementShare {
  /** Its text on one line, shortened. */
  query: string;
  /** Calls per request sent. */
  perRequest: number;
  /** Mean execution time in the server, in ms. */
  msPerCall: number;
}

/** One scenario over all its rounds. */
export interface ScenarioSummary {
  id: string;
  item: string;
  title: string;
  app: string;
  route: string;
  /** Measured runs (the baseline has several per round). */
  runs: number;
  /** Medians over the rounds. */
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /**
   * Requests/s of each run over the mean of the baseline runs next to it in its round. For the
   * baseline itself: the noise floor.
   */
  ratio: Spread | null;
  /**
   * The same ratio as the server's CPU per request predicts it (the neighbouring baseline runs'
   * app + PostgreSQL CPU per request over this run's): steadier than requests/s on a shared
   * machine, blind to waits (commit flushes, locks).
   */
  cpuRatio: Spread | null;
  /**
   * What the scenario adds to a request's latency: each run's p50 and p99 minus the mean of the
   * neighbouring baseline runs', in ms. For the baseline itself: the noise floor.
   */
  addedMs: { p50: Spread; p99: Spread } | null;
  targets: TargetResult[];
  perRequest: PerRequestCost;
  totals: Pick<
    LoadOutcome,
    | 'sent'
    | 'completed'
    | 'status2xx'
    | 'status409'
    | 'statusOther'
    | 'errors'
    | 'timeouts'
    | 'replayed'
  >;
  exactlyOnce: ExactlyOnceCheck & { ok: boolean };
  /** The statements behind `perRequest.statements`, most frequent first. */
  statementsPerRequest: StatementShare[] | null;
}

type Value = (run: RunMeasurement) => number | null;

export function summarize(
  scenarios: readonly Scenario[],
  runs: readonly RunMeasurement[],
): ScenarioSummary[] {
  const baselineRuns = runs.filter((run) => run.scenario === BASELINE);
  /**
   * `value(run)` over the mean of the baseline runs just before and just after it in its round
   * (measureRounds places one within two runs on each side).
   */
  const reference = (run: RunMeasurement, value: Value): number | null => {
    const round = baselineRuns.filter((other) => other.round === run.round && other !== run);
    const before = round.filter((other) => other.position < run.position).at(-1);
    const after = round.find((other) => other.position > run.position);
    const references = [before, after].flatMap((other) => (other ? [value(other)] : []));
    if (references.length === 0 || references.some((r) => !r)) {
      return null;
    }
    return sum(references as number[]) / references.length;
  };
  const normalized = (run: RunMeasurement, value: Value): number | null => {
    const own = value(run);
    const mean = reference(run, value);
    return own === null || mean === null ? null : own / mean;
  };
  /** `value(run)` minus the same mean of its neighbouring baseline runs. */
  const added = (runsOf: readonly RunMeasurement[], value: Value): Spread | null => {
    const values = runsOf.flatMap((run) => {
      const own = value(run);
      const mean = reference(run, value);
      return own === null || mean === null ? [] : [own - mean];
    });
    return values.length > 0 ? spread(values) : null;
  };
  /** Per-round ratios of `scenario` to `against`, each normalised by its neighbouring baselines. */
  const ratios = (scenario: string, against: string, value: Value): number[] => {
    const values: number[] = [];
    for (const run of runs.filter((r) => r.scenario === scenario)) {
      const own = normalized(run, value);
      if (against === BASELINE) {
        values.push(...(own === null ? [] : [own]));
        continue;
      }
      const twin = runs.find((r) => r.scenario === against && r.round === run.round);
      const other = twin ? normalized(twin, value) : null;
      if (own !== null && other) {
        values.push(own / other);
      }
    }
    return values;
  };
  const rps = (run: RunMeasurement) => run.rps;
  const appCpu = (run: RunMeasurement) => run.cpuMs.app / run.sent;
  const requestsPerServerCpuMs = (run: RunMeasurement) =>
    run.cpuMs.postgres === null
      ? null
      : run.sent / (run.cpuMs.app + run.cpuMs.postgres + (run.cpuMs.redis ?? 0));
  return scenarios.map((scenario) => {
    const own = runs.filter((run) => run.scenario === scenario.id);
    const sent = sum(own.map((run) => run.sent));
    const perRequest = (values: number[]) => sum(values) / sent;
    const nullable = (values: (number | null)[]) =>
      values.some((value) => value === null) ? null : perRequest(values as number[]);
    const baseline = ratios(scenario.id, BASELINE, rps);
    const byCpu = ratios(scenario.id, BASELINE, requestsPerServerCpuMs);
    const check = addChecks(own.map((run) => run.check));
    const statusOther: Record<string, number> = {};
    for (const run of own) {
      for (const [status, count] of Object.entries(run.statusOther)) {
        statusOther[status] = (statusOther[status] ?? 0) + count;
      }
    }
    return {
      id: scenario.id,
      item: scenario.item,
      title: scenario.title,
      app: scenario.app,
      route: `POST ${scenario.path}`,
      runs: own.length,
      rps: median(own.map((run) => run.rps)),
      p50Ms: median(own.map((run) => run.latencyMs.p50)),
      p99Ms: median(own.map((run) => run.latencyMs.p99)),
      ratio: baseline.length > 0 ? spread(baseline) : null,
      cpuRatio: byCpu.length > 0 ? spread(byCpu) : null,
      addedMs: ((p50, p99) => (p50 && p99 ? { p50, p99 } : null))(
        added(own, (run) => run.latencyMs.p50),
        added(own, (run) => run.latencyMs.p99),
      ),
      targets: scenario.targets.flatMap((target) => {
        const measure = target.measure ?? 'throughput';
        const values = ratios(scenario.id, target.against, measure === 'app-cpu' ? appCpu : rps);
        if (values.length === 0) {
          return [];
        }
        const ratio = spread(values);
        const pass =
          measure === 'app-cpu' ? ratio.median <= target.bound : ratio.median >= target.bound;
        return [{ ...target, measure, ratio, pass }];
      }),
      perRequest: {
        statements: nullable(own.map((run) => run.statements)),
        appStatements: perRequest(own.map((run) => run.appStatements)),
        commits: nullable(own.map((run) => run.commits)),
        xids: perRequest(own.map((run) => run.xids)),
        walBytes: perRequest(own.map((run) => run.walBytes)),
        cpuMs: {
          app: perRequest(own.map((run) => run.cpuMs.app)),
          postgres: nullable(own.map((run) => run.cpuMs.postgres)),
          redis: nullable(own.map((run) => run.cpuMs.redis ?? null)),
          loadGenerator: perRequest(own.map((run) => run.cpuMs.loadGenerator)),
        },
      },
      totals: {
        sent,
        completed: sum(own.map((run) => run.completed)),
        status2xx: sum(own.map((run) => run.status2xx)),
        status409: sum(own.map((run) => run.status409)),
        statusOther,
        errors: sum(own.map((run) => run.errors)),
        timeouts: sum(own.map((run) => run.timeouts)),
        replayed: sum(own.map((run) => run.replayed)),
      },
      exactlyOnce: {
        ...check,
        ok:
          check.duplicates === 0 &&
          check.acknowledgedWithoutRow === 0 &&
          check.stuckInFlight === 0 &&
          check.duplicateRecords === 0,
      },
      statementsPerRequest: statementsPerRequest(own, sent),
    };
  });
}

/** Calls of each normalised statement over the rounds, per request sent. */
function statementsPerRequest(
  runs: readonly RunMeasurement[],
  sent: number,
): StatementShare[] | null {
  if (runs.some((run) => run.statementCalls === null)) {
    return null;
  }
  const totals = new Map<string, { calls: number; execMs: number }>();
  for (const run of runs) {
    for (const statement of run.statementCalls ?? []) {
      const total = totals.get(statement.query) ?? { calls: 0, execMs: 0 };
      total.calls += statement.calls;
      total.execMs += statement.execMs;
      totals.set(statement.query, total);
    }
  }
  return [...totals]
    .map(([query, total]) => ({
      query: oneLine(query),
      perRequest: total.calls / sent,
      msPerCall: total.execMs / total.calls,
    }))
    .sort((a, b) => b.perRequest - a.perRequest);
}

/** A statement's text on one line, cut to a readable length. */
function oneLine(query: string): string {
  const flat = query.replace(/\s+/g, ' ').trim();
  return flat.length > 100 ? `${flat.slice(0, 97)}...` : flat;
}

function sum(values: readonly number[]): number {
  return values.reduce((total, value) => total + value, 0);
}

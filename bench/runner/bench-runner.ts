import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import type { BenchConfig } from '../bench.config';
import type { BenchProcess } from './app-process';
import { type DatabaseMonitor, statementDeltas } from './database-monitor';
import { type IdempotencyRecords, checkExactlyOnce } from './exactly-once';
import { type KeyOf, hotKeys, knownKeys, makeKeys, newKeys } from './keys';
import { runLoad } from './load';
import type { RunMeasurement } from './measurement';
import type { ProcessCpu } from './process-cpu';
import { type AppName, BASELINE, type Scenario } from './scenarios';
import { shuffled } from './statistics';

/** What the runs need: the apps, their databases, and where statistics are read. */
export interface BenchTargets {
  /** The process hosting the apps. */
  apps: BenchProcess;
  /** Database name of each app. */
  databases: Record<AppName, string>;
  /** A small pool on each app's database, for the exactly-once checks. */
  pools: Record<AppName, pg.Pool>;
  /** Where each app started keeps its idempotency records, for the checks. */
  records: Partial<Record<AppName, IdempotencyRecords>>;
  monitor: DatabaseMonitor;
  /** CPU of the Redis server the Redis apps use, when the bench started one. */
  redisCpu?: ProcessCpu;
}

/**
 * Runs the scenarios: creates the replay keys, warms every app up, then measures the rounds (each
 * in its own shuffled order, with baseline runs in between), checking exactly-once after each run.
 */
export class BenchRunner {
  private readonly replayKeys = new Map<string, string[]>();
  /**
   * The app's CPU in 50 ms below which it counts as idle. A CPU profiler's sampling thread alone
   * uses about 2 ms in 50 ms, which would otherwise hold every settle to its 20 s deadline.
   */
  private readonly idleCpuUs: number;

  constructor(
    private readonly config: BenchConfig,
    private readonly targets: BenchTargets,
    private readonly log: (line: string) => void,
  ) {
    this.idleCpuUs = config.cpuProfileDir ? 10_000 : 1_000;
  }

  /** Creates the keys each replay scenario replays, through its own route and app. */
  async prepareReplays(scenarios: readonly Scenario[]): Promise<void> {
    for (const scenario of scenarios.filter((s) => s.keys === 'replay')) {
      const keys = makeKeys(this.config.replayKeys);
      const outcome = await runLoad({
        url: this.urlOf(scenario),
        path: scenario.path,
        connections: Math.min(this.config.connections, keys.length),
        amount: keys.length,
        keyOf: knownKeys(keys),
      });
      if (outcome.acknowledged.size !== keys.length) {
        throw new Error(
          `Creating the keys of ${scenario.id}: ${outcome.acknowledged.size} of ${keys.length} answered 2xx.`,
        );
      }
      this.replayKeys.set(scenario.id, keys);
    }
  }

  /** Sends each app `warmupRequests` requests, spread over the scenarios it serves. */
  async warmUp(scenarios: readonly Scenario[]): Promise<void> {
    for (const scenario of scenarios) {
      const sharing = scenarios.filter((other) => other.app === scenario.app).length;
      await runLoad({
        url: this.urlOf(scenario),
        path: scenario.path,
        connections: this.config.connections,
        amount: Math.max(this.config.connections, Math.ceil(this.config.warmupRequests / sharing)),
        keyOf: this.keyOf(scenario),
      });
    }
  }

  /**
   * Each round runs the other scenarios in its own shuffled order, with the baseline before the
   * first and after every second one: every run has a baseline run next to it or one away, and its
   * ratio is taken to those (see summary.ts), so the load of other work on the machine, which
   * changes from one minute to the next, cancels out.
   */
  async measureRounds(scenarios: readonly Scenario[]): Promise<RunMeasurement[]> {
    const baseline = scenarios.find((scenario) => scenario.id === BASELINE);
    if (!baseline) {
      throw new Error(`The baseline (${BASELINE}) must run.`);
    }
    const others = scenarios.filter((scenario) => scenario !== baseline);
    const measurements: RunMeasurement[] = [];
    for (let round = 1; round <= this.config.rounds; round++) {
      const order: Scenario[] = [baseline];
      shuffled(others, round).forEach((scenario, index) => {
        order.push(scenario);
        if (index % 2 === 1 || index === others.length - 1) {
          order.push(baseline);
        }
      });
      this.log(`round ${round}/${this.config.rounds}: ${order.map((s) => s.id).join(', ')}`);
      for (const [position, scenario] of order.entries()) {
        if (scenario !== baseline && this.config.leadInSeconds > 0) {
          // Unmeasured: the app's code path, its connections and the server's caches were used
          // last by another scenario, maybe in another app.
          await this.load(scenario, this.config.leadInSeconds);
        }
        measurements.push(await this.measure(scenario, round, position));
      }
    }
    return measurements;
  }

  private load(scenario: Scenario, seconds: number) {
    return runLoad({
      url: this.urlOf(scenario),
      path: scenario.path,
      connections: this.config.connections,
      seconds,
      keyOf: this.keyOf(scenario),
    });
  }

  private async measure(
    scenario: Scenario,
    round: number,
    position: number,
  ): Promise<RunMeasurement> {
    const { apps, databases, pools, records, monitor } = this.targets;
    const database = databases[scenario.app];
    const allDatabases = [...new Set(Object.values(databases))];

    await this.settle(allDatabases);
    const before = await monitor.snapshot(database);
    const appBefore = await apps.stats();
    const redisBefore = this.targets.redisCpu?.() ?? null;
    const loadBefore = process.cpuUsage();

    const outcome = await this.load(scenario, this.config.seconds);

    const load = process.cpuUsage(loadBefore);
    // Requests the load generator gave up on at its deadline may still be running in the app.
    await this.settle(allDatabases);
    const appAfter = await apps.stats();
    const redisAfter = this.targets.redisCpu?.() ?? null;
    const after = await monitor.snapshot(database);

    const replayed = this.replayKeys.get(scenario.id);
    const recordsOfApp = records[scenario.app];
    if (!recordsOfApp) {
      throw new Error(`No idempotency records to check for the ${scenario.app} app`);
    }
    const check = await checkExactlyOnce(
      pools[scenario.app],
      recordsOfApp,
      replayed ? new Set(replayed) : outcome.keys,
      outcome.acknowledged,
    );
    const statementCalls = statementDeltas(before, after);
    const commits = await monitor.commitsBetween(before, after);
    return {
      scenario: scenario.id,
      round,
      position,
      durationS: outcome.durationS,
      sent: outcome.sent,
      completed: outcome.completed,
      rps: outcome.rps,
      latencyMs: outcome.latencyMs,
      status2xx: outcome.status2xx,
      status409: outcome.status409,
      statusOther: outcome.statusOther,
      errors: outcome.errors,
      timeouts: outcome.timeouts,
      replayed: outcome.replayed,
      statements: statementCalls?.reduce((total, s) => total + s.calls, 0) ?? null,
      appStatements: appAfter.queries - appBefore.queries,
      commits,
      xids: Number(after.nextXid - before.nextXid),
      walBytes: Number(after.walBytes - before.walBytes),
      cpuMs: {
        app:
          (appAfter.cpuUserUs +
            appAfter.cpuSystemUs -
            appBefore.cpuUserUs -
            appBefore.cpuSystemUs) /
          1000,
        postgres:
          after.postgresCpuMs === null || before.postgresCpuMs === null
            ? null
            : after.postgresCpuMs - before.postgresCpuMs,
        redis: redisAfter === null || redisBefore === null ? null : redisAfter - redisBefore,
        loadGenerator: (load.user + load.system) / 1000,
      },
      statementCalls,
      check,
    };
  }

  /**
   * Waits until the databases are idle and the app has stopped working (requests still queued in
   * it after the load generator's deadline): no statement sent and the CPU under `idleCpuUs`.
   */
  private async settle(databases: readonly string[]): Promise<void> {
    const deadline = Date.now() + 20_000;
    let last = await this.targets.apps.stats();
    for (;;) {
      await this.targets.monitor.quiesce(databases);
      await sleep(50);
      const now = await this.targets.apps.stats();
      const cpuUs = now.cpuUserUs + now.cpuSystemUs - last.cpuUserUs - last.cpuSystemUs;
      if ((now.queries === last.queries && cpuUs < this.idleCpuUs) || Date.now() > deadline) {
        return;
      }
      last = now;
    }
  }

  private urlOf(scenario: Scenario): string {
    const url = this.targets.apps.urls[scenario.app];
    if (!url) {
      throw new Error(`The ${scenario.app} app was not started for ${scenario.id}`);
    }
    return url;
  }

  private keyOf(scenario: Scenario): KeyOf {
    switch (scenario.keys) {
      case 'new':
        return newKeys();
      case 'hot':
        return hotKeys(this.config.hotKeys, this.config.hotRequestsPerKey);
      case 'replay': {
        const keys = this.replayKeys.get(scenario.id);
        if (!keys) {
          throw new Error(`No replay keys prepared for ${scenario.id}`);
        }
        return knownKeys(keys);
      }
    }
  }
}

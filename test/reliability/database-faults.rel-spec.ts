import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { IdempotencyModuleOptions } from '../../lib';
import { CREATE_EXECUTIONS_SQL } from '../e2e/fixtures/executions';
import { ADAPTERS, type AdapterName, type TestApp, createTestApp } from '../utils/test-app';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';
import { waitFor } from '../utils/wait-for';
import { PROFILE, byProfile } from './profile';
import { DbFaultAppModule, FAULT_WAIT_TIMEOUT_MS } from './support/db-fault-app.module';
import {
  type Exchange,
  FaultLoad,
  type FaultRoute,
  type RecordedOutcome,
  describeCause,
  keyHash,
  percentile,
  tally,
} from './support/db-fault-load';
import { Rng } from './support/hostile-generator';
import { PrivatePostgres } from './support/private-postgres';

/*
 * Scenario 3 of the reliability issue: the database restarts (fast and immediate shutdown) and
 * stalls (SIGSTOP of the whole server, then SIGCONT) under load. The app runs in process on a real
 * port; its database is a PostgreSQL of this file's own, so that it can be killed and frozen. The
 * lease route records its runs in a database on the shared test server (a side effect outside the
 * faulty database), the transactional route in its own transaction.
 */

const STORE_TIMEOUT_MS = 1000;
/**
 * PostgreSQL's statement_timeout in the transactional route's transactions; a statement of its
 * handler left unanswered STORE_TIMEOUT_MS past it (a frozen server) closes the connection.
 */
const STATEMENT_TIMEOUT_MS = 1000;
/** Far longer than this file runs: a key left in flight stays blocked (409), it never runs twice. */
const LEASE_MS = 30 * 60_000;
/** How long a handler works after its write (sent as X-Work-Ms). */
const WORK_MS = 40;
/** Room for a busy, shared 2-core machine on top of the module's own bounds. */
const SLACK_MS = 4000;
/**
 * The longest any request may take, the handler's work and slack aside: a duplicate's wait for a
 * busy transactional key, then a claim and one more store call (completion or commit), each
 * bounded by the store timeout; or a transactional first execution: its claim, its handler's
 * statement (answered, or given up STORE_TIMEOUT_MS past the statement timeout) and its commit.
 * Anything longer is a hang.
 */
const MAX_LATENCY_MS =
  Math.max(
    FAULT_WAIT_TIMEOUT_MS + 2 * STORE_TIMEOUT_MS,
    STORE_TIMEOUT_MS + (STATEMENT_TIMEOUT_MS + STORE_TIMEOUT_MS) + STORE_TIMEOUT_MS,
  ) +
  WORK_MS +
  SLACK_MS;
/** Only ends a request that truly hangs, so that its latency is still measured. */
const CLIENT_TIMEOUT_MS = 120_000;
/** The app must serve fresh keys again within this after the database is back. */
const RECOVERY_MS = 30_000;

const WORKERS = byProfile(6, 16);
/**
 * Each fault starts after a seeded share of this (from a half to one and a half), so that runs
 * with different seeds meet the load in different phases: RELIABILITY_SEED=<seed> repeats one.
 */
const BEFORE_FAULT_MS = byProfile(1000, 5000);
const SEED = Number(process.env.RELIABILITY_SEED ?? randomBytes(4).readUInt32LE(0));
/** Drawn as the rounds run, in schedule order: a seed gives every round the same delay again. */
const rng = new Rng(SEED);
const DOWN_MS = byProfile(1000, 5000);
/** Longer than MAX_LATENCY_MS, so that a request that waits the stall out shows as a hang. */
const FREEZE_MS = byProfile(MAX_LATENCY_MS + 2500, 20_000);
const AFTER_RECOVERY_MS = byProfile(1000, 5000);
const POOL_SIZE = 10;
const FAULT_TIMEOUT_MS = byProfile(180_000, 900_000);

type Fault = 'restart-fast' | 'restart-immediate' | 'freeze';
const FAULTS: Fault[] = ['restart-fast', 'restart-immediate', 'freeze'];
/**
 * Which faults each platform gets. The fast profile (inside `npm test`) runs every fault on
 * Express and one on Fastify; the full profile runs every fault on both, three times.
 */
const SCHEDULE: Record<AdapterName, Fault[]> = byProfile(
  { express: FAULTS, fastify: ['restart-immediate'] },
  { express: [...FAULTS, ...FAULTS, ...FAULTS], fastify: [...FAULTS, ...FAULTS, ...FAULTS] },
);
/** Platforms on which a stall in the middle of a single handler is checked (see below). */
const MID_HANDLER_STALL: AdapterName[] = byProfile(['express'], ['express', 'fastify']);
/** The handlers of the mid-handler stall work this long; the stall begins once both have written. */
const STALLED_WORK_MS = 1500;
const STALL_MS = byProfile(9000, 15_000);

const STORE_UNAVAILABLE = 'urn:nestjs-idempotency:problem:store-unavailable';
const KEY_IN_FLIGHT = 'urn:nestjs-idempotency:problem:key-in-flight';
const PROBLEM = /^application\/problem\+json/;

/** What one fault left behind, gathered once and checked by several tests. */
interface FaultRun {
  exchanges: Exchange[];
  /** 5xx answers with the cause the module reported for them (onOutcome). */
  causes: Map<Exchange, string>;
  /** Runs per `route:key`, counted in the databases before and after the retries. */
  executionsBefore: Map<string, number>;
  executionsAfter: Map<string, number>;
  /** Keys of this run still in flight once everything settled (lease: completion failed). */
  inFlightAfter: Set<string>;
  /** How long the load ran before the fault (seeded). */
  beforeFaultMs: number;
  faultMs: number;
  /** Wall time of the whole run: load, fault, recovery, retries and counts. */
  elapsedMs: number;
  recoveryMs: number | null;
  recoveryError: string | null;
}

const id = (route: FaultRoute, key: string) => `${route}:${key}`;
/** Requests sent once the database was back and the load had stopped. */
const AFTER_RECOVERY = new Set<Exchange['kind']>(['retry', 'replay-check']);
const isFresh201 = (e: Exchange) => e.status === 201 && !e.replayed;

describe(`database restart and stall (profile ${PROFILE})`, () => {
  let server: PrivatePostgres;
  let side: TestDatabase;

  beforeAll(async () => {
    [server, side] = await Promise.all([PrivatePostgres.start(), createTestDatabase()]);
    await side.query(CREATE_EXECUTIONS_SQL);
  }, 120_000);

  afterAll(async () => {
    await server?.destroy();
    await side?.drop();
  }, 120_000);

  describe.each(ADAPTERS)('%s', (adapter) => {
    const database = `faults_${adapter}`;
    const events: RecordedOutcome[] = [];
    /** Keys (their hashes) whose claim the module reported. */
    const claimed = new Set<string>();
    let app: TestApp;
    let baseUrl: string;

    beforeAll(async () => {
      await server.query(`CREATE DATABASE ${database}`);
      const idempotency: IdempotencyModuleOptions = {
        storeTimeoutMs: STORE_TIMEOUT_MS,
        statementTimeoutMs: STATEMENT_TIMEOUT_MS,
        lockTimeoutMs: LEASE_MS,
        onOutcome: (event) => {
          if (event.outcome === 'claimed') {
            claimed.add(event.keyHash ?? '');
          }
          if (event.outcome === 'store-error' || event.outcome === 'released') {
            events.push({
              outcome: event.outcome,
              keyHash: event.keyHash ?? '',
              status: event.status,
              cause: describeCause(event.error),
            });
          }
        },
      };
      app = await createTestApp(
        adapter,
        DbFaultAppModule.register({
          databaseUrl: server.url(database),
          sideDatabaseUrl: side.url,
          poolSize: POOL_SIZE,
          idempotency,
        }),
      );
      baseUrl = await app.app.getUrl();
    }, 120_000);

    afterAll(async () => {
      server.thaw();
      await app?.close();
    }, 60_000);

    const executionsByKey = async (prefix: string): Promise<Map<string, number>> => {
      const sql =
        'SELECT route, idem_key, count(*)::int AS n FROM executions WHERE starts_with(idem_key, $1) GROUP BY route, idem_key';
      type Row = { route: FaultRoute; idem_key: string; n: number };
      const [lease, transactional] = await Promise.all([
        side.query<Row>(sql, [prefix]),
        server.query<Row>(sql, [prefix], database),
      ]);
      return new Map(
        [...lease, ...transactional].map((row) => [id(row.route, row.idem_key), row.n]),
      );
    };

    /** Waits until the app's connections to the database have nothing left to run. */
    const settle = async () => {
      const deadline = Date.now() + 20_000;
      let quietRounds = 0;
      while (quietRounds < 3 && Date.now() < deadline) {
        const [row] = await server.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND state <> 'idle' AND pid <> pg_backend_pid()",
          [database],
        );
        quietRounds = row.n === 0 ? quietRounds + 1 : 0;
        await sleep(200);
      }
    };

    /** Fresh keys on both routes until both run: the pool has dropped dead connections. */
    const awaitRecovery = async (load: FaultLoad, prefix: string): Promise<number> => {
      const since = Date.now();
      for (let i = 0; ; i++) {
        const probes = await Promise.all([
          load.send('lease', `${prefix}-probe-lease-${i}`, 'probe'),
          load.send('transactional', `${prefix}-probe-transactional-${i}`, 'probe'),
        ]);
        if (probes.every(isFresh201)) {
          return Date.now() - since;
        }
        if (Date.now() - since > RECOVERY_MS) {
          throw new Error(
            `no fresh 201 on both routes within ${RECOVERY_MS} ms; last: ${probes
              .map((p) => `${p.route} ${p.status} ${p.text.slice(0, 120)}`)
              .join(' | ')}`,
          );
        }
        await sleep(100);
      }
    };

    /** Calls `send` for every item, at most `parallel` at once. */
    const inBatches = async <T>(
      items: T[],
      parallel: number,
      send: (item: T) => Promise<unknown>,
    ) => {
      for (let i = 0; i < items.length; i += parallel) {
        await Promise.all(items.slice(i, i + parallel).map(send));
      }
    };

    const runFault = async (fault: Fault, round: number): Promise<FaultRun> => {
      const beforeFaultMs = rng.int(BEFORE_FAULT_MS / 2, (BEFORE_FAULT_MS * 3) / 2);
      const runStarted = Date.now();
      const prefix = `${adapter}-${fault}-r${round}-${runStarted}`;
      const load = new FaultLoad({
        baseUrl,
        prefix,
        workers: WORKERS,
        duplicateEvery: 7,
        workMs: WORK_MS,
        clientTimeoutMs: CLIENT_TIMEOUT_MS,
      }).start();
      const firstEvent = events.length;
      let faultMs: number;
      let recoveryMs: number | null = null;
      let recoveryError: string | null = null;
      try {
        await sleep(beforeFaultMs);
        const faultStarted = Date.now();
        if (fault === 'freeze') {
          server.freeze();
          try {
            await sleep(FREEZE_MS);
          } finally {
            server.thaw();
          }
        } else {
          await server.restart(fault === 'restart-fast' ? 'fast' : 'immediate', DOWN_MS);
        }
        faultMs = Date.now() - faultStarted;
        try {
          recoveryMs = await awaitRecovery(load, prefix);
        } catch (error) {
          recoveryError = String(error);
        }
        await sleep(AFTER_RECOVERY_MS);
      } finally {
        server.thaw();
        await load.stop();
      }
      await settle();

      const sent = load.exchanges.slice();
      const keys = new Map<string, { route: FaultRoute; key: string; exchanges: Exchange[] }>();
      for (const exchange of sent) {
        const entry = keys.get(id(exchange.route, exchange.key)) ?? {
          route: exchange.route,
          key: exchange.key,
          exchanges: [],
        };
        entry.exchanges.push(exchange);
        keys.set(id(exchange.route, exchange.key), entry);
      }
      const executionsBefore = await executionsByKey(prefix);
      // Every key once more, now that the database is back: a 503'd key may run (once), a key
      // that ran must replay.
      await inBatches([...keys.values()], 8, ({ route, key, exchanges }) =>
        load.send(route, key, exchanges.some(isFresh201) ? 'replay-check' : 'retry'),
      );
      await settle();
      const executionsAfter = await executionsByKey(prefix);
      const inFlight = await server.query<{ key: string }>(
        "SELECT key FROM idempotency_records WHERE starts_with(key, $1) AND state = 'in_flight'",
        [prefix],
        database,
      );

      const exchanges = load.exchanges.slice();
      const causes = new Map<Exchange, string>();
      const unused = events.slice(firstEvent);
      for (const exchange of exchanges.filter((e) => e.status >= 500)) {
        const hash = keyHash(exchange.key);
        const index = unused.findIndex((e) => e.keyHash === hash && e.status === exchange.status);
        causes.set(
          exchange,
          index === -1 ? 'no onOutcome event' : (unused.splice(index, 1)[0].cause ?? 'none'),
        );
      }
      const run: FaultRun = {
        exchanges,
        causes,
        executionsBefore,
        executionsAfter,
        inFlightAfter: new Set(inFlight.map((row) => row.key)),
        beforeFaultMs,
        faultMs,
        elapsedMs: Date.now() - runStarted,
        recoveryMs,
        recoveryError,
      };
      report(fault, round, run);
      return run;
    };

    const report = (fault: Fault, round: number, run: FaultRun) => {
      const lines = [
        `[database-faults] ${adapter} ${fault} round ${round} (profile ${PROFILE}, seed ${SEED})`,
      ];
      lines.push(
        `  load ${run.beforeFaultMs} ms before the fault; fault ${run.faultMs} ms; recovery ${run.recoveryMs ?? `FAILED: ${run.recoveryError}`} ms; whole run ${run.elapsedMs} ms`,
      );
      for (const route of ['lease', 'transactional'] as const) {
        const all = run.exchanges.filter((e) => e.route === route);
        const underLoad = all.filter((e) => !AFTER_RECOVERY.has(e.kind));
        const after = all.filter((e) => AFTER_RECOVERY.has(e.kind));
        const latencies = underLoad.map((e) => e.latencyMs);
        const fiveXx = underLoad.filter((e) => e.status >= 500 || e.status === 0);
        const counts = [...run.executionsAfter.entries()].filter(([k]) =>
          k.startsWith(`${route}:`),
        );
        lines.push(
          `  ${route}: requests ${underLoad.length}, statuses ${JSON.stringify(
            tally(underLoad.map(statusLabel)),
          )}`,
          `    5xx by cause ${JSON.stringify(
            tally(
              fiveXx.map((e) => `${e.status || 'no answer'} ${run.causes.get(e) ?? e.error ?? ''}`),
            ),
          )}`,
          `    latency p50 ${percentile(latencies, 50)} ms, p99 ${percentile(latencies, 99)} ms, max ${percentile(latencies, 100)} ms`,
          `    after recovery: ${after.length} retries/replay checks ${JSON.stringify(
            tally(after.map(statusLabel)),
          )}`,
          `    executions ${counts.reduce((sum, [, n]) => sum + n, 0)} over ${counts.length} keys, duplicates ${
            counts.filter(([, n]) => n > 1).length
          }, keys left in flight ${[...run.inFlightAfter].filter((k) => k.includes(`-${route}-`)).length}`,
          `    keys answered only 5xx under load whose retry got 409 (claim landed, never released): ${
            groupByKey(all).filter(
              ([, list]) =>
                list.some((e) => e.kind === 'retry' && e.status === 409) &&
                list.every((e) => AFTER_RECOVERY.has(e.kind) || e.status >= 500),
            ).length
          }`,
        );
      }
      console.log(lines.join('\n'));
    };

    if (MID_HANDLER_STALL.includes(adapter)) {
      it(
        'a stall while handlers run: both routes answer within the store timeout after the handler',
        async () => {
          const prefix = `${adapter}-mid-handler-${Date.now()}`;
          const load = new FaultLoad({
            baseUrl,
            prefix,
            workers: 0,
            duplicateEvery: 1,
            workMs: STALLED_WORK_MS,
            clientTimeoutMs: CLIENT_TIMEOUT_MS,
          });
          const leaseKey = `${prefix}-lease-1`;
          const transactionalKey = `${prefix}-transactional-1`;
          const answers = Promise.all([
            load.send('lease', leaseKey, 'load'),
            load.send('transactional', transactionalKey, 'load'),
          ]);
          // Both handlers have written (the transactional one inside its open transaction) and
          // are working: the next statement of each request is the module's.
          await waitFor(async () => {
            const [side1] = await side.query<{ n: number }>(
              'SELECT count(*)::int AS n FROM executions WHERE idem_key = $1',
              [leaseKey],
            );
            const [open] = await server.query<{ n: number }>(
              "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND state = 'idle in transaction' AND query LIKE 'INSERT INTO executions%'",
              [database],
            );
            return side1.n === 1 && open.n === 1;
          }, 20_000);
          server.freeze();
          try {
            await sleep(STALL_MS);
          } finally {
            server.thaw();
          }
          const [lease, transactional] = await answers;
          await settle();
          const bound = STALLED_WORK_MS + 2 * STORE_TIMEOUT_MS + SLACK_MS;
          console.log(
            `[database-faults] ${adapter} stall of ${STALL_MS} ms while handlers work: lease ${lease.status} in ${lease.latencyMs} ms, transactional ${transactional.status} in ${transactional.latencyMs} ms (bound ${bound} ms)`,
          );

          // Lease mode: the completion times out, the client gets its real answer.
          expect({
            status: lease.status,
            latencyMs: lease.latencyMs,
            withinBound: lease.latencyMs <= bound,
          }).toEqual({ status: 201, latencyMs: expect.any(Number), withinBound: true });
          // A retry after the stall runs nothing again, whatever the first answer was.
          await load.send('transactional', transactionalKey, 'retry');
          const [runs] = await server.query<{ n: number }>(
            'SELECT count(*)::int AS n FROM executions WHERE idem_key = $1',
            [transactionalKey],
            database,
          );
          expect(runs.n).toBeLessThanOrEqual(1);
          // Transactional mode: what is left is the module's completion and the commit, both
          // store calls; the database is frozen throughout, so the answer must be a bounded 503.
          expect({
            status: transactional.status,
            problemType: transactional.problemType,
            latencyMs: transactional.latencyMs,
            withinBound: transactional.latencyMs <= bound,
          }).toEqual({
            status: 503,
            problemType: STORE_UNAVAILABLE,
            latencyMs: expect.any(Number),
            withinBound: true,
          });
        },
        STALL_MS + 120_000,
      );

      it(
        "a stall while a transactional handler's own statement waits: 503 once it stays unanswered past its bound, and the retry runs once",
        async () => {
          const prefix = `${adapter}-mid-statement-${Date.now()}`;
          const load = new FaultLoad({
            baseUrl,
            prefix,
            workers: 0,
            duplicateEvery: 1,
            workMs: 0,
            clientTimeoutMs: CLIENT_TIMEOUT_MS,
          });
          const key = `${prefix}-transactional-1`;
          const firstEvent = events.length;
          // The handler pauses before its write, holding its claimed transaction; the stall
          // begins in that pause, so the write goes to a server that does not answer.
          const answer = load.send('transactional', key, 'load', {
            'x-pause-ms': String(STALLED_WORK_MS),
          });
          await waitFor(async () => claimed.has(keyHash(key)), 20_000);
          server.freeze();
          try {
            await sleep(STALL_MS);
          } finally {
            server.thaw();
          }
          const transactional = await answer;
          await settle();
          const unanswered = STATEMENT_TIMEOUT_MS + STORE_TIMEOUT_MS;
          const bound = STORE_TIMEOUT_MS + STALLED_WORK_MS + unanswered + SLACK_MS;
          console.log(
            `[database-faults] ${adapter} stall of ${STALL_MS} ms while a handler's statement waits: transactional ${transactional.status} in ${transactional.latencyMs} ms (bound ${bound} ms)`,
          );

          expect({
            status: transactional.status,
            problemType: transactional.problemType,
            withinBound: transactional.latencyMs <= bound,
            // The statement's own bound answered, not a store call's timeout.
            afterStatementBound: transactional.latencyMs >= STALLED_WORK_MS + unanswered - 100,
            causes: events
              .slice(firstEvent)
              .filter((e) => e.keyHash === keyHash(key))
              .map((e) => e.cause),
          }).toEqual({
            status: 503,
            problemType: STORE_UNAVAILABLE,
            withinBound: true,
            afterStatementBound: true,
            causes: ['statement unanswered, connection closed'],
          });
          const runs = async () =>
            (
              await server.query<{ n: number }>(
                'SELECT count(*)::int AS n FROM executions WHERE idem_key = $1',
                [key],
                database,
              )
            )[0].n;
          // The closed connection took the write with it.
          expect(await runs()).toBe(0);
          const retry = await load.send('transactional', key, 'retry');
          expect({ status: retry.status, replayed: retry.replayed }).toEqual({
            status: 201,
            replayed: false,
          });
          expect(await runs()).toBe(1);
        },
        STALL_MS + 120_000,
      );
    }

    const runs = SCHEDULE[adapter].map((fault, index) => ({
      fault,
      round: SCHEDULE[adapter].slice(0, index + 1).filter((f) => f === fault).length,
    }));

    describe.each(runs)('$fault (round $round)', ({ fault, round }) => {
      let run: FaultRun;

      beforeAll(async () => {
        run = await runFault(fault, round);
      }, FAULT_TIMEOUT_MS);

      const outside = (route: FaultRoute) =>
        run.exchanges
          .filter((e) => e.route === route)
          .filter(
            (e) =>
              !(e.status === 201 && e.contentType.startsWith('application/json')) &&
              !(
                e.status === 503 &&
                PROBLEM.test(e.contentType) &&
                e.problemType === STORE_UNAVAILABLE &&
                e.retryAfter === '1'
              ) &&
              !(
                e.status === 409 &&
                PROBLEM.test(e.contentType) &&
                e.problemType === KEY_IN_FLIGHT &&
                Number(e.retryAfter) >= 1
              ),
          )
          .map(describeExchange(run));

      it('the fault was felt: requests got 503 while the database was away', () => {
        expect(run.exchanges.filter((e) => e.status === 503).length).toBeGreaterThan(0);
      });

      it.each(['lease', 'transactional'] as const)(
        'every request on the %s route ends with its stored result, a 503 or a 409',
        (route) => {
          expect(run.exchanges.filter((e) => e.route === route).length).toBeGreaterThan(0);
          expect(outside(route)).toEqual([]);
        },
      );

      it(`no request takes longer than the store timeout allows (${MAX_LATENCY_MS} ms)`, () => {
        const slow = run.exchanges
          .filter((e) => e.latencyMs > MAX_LATENCY_MS)
          .map(describeExchange(run));
        expect(slow).toEqual([]);
      });

      it('a 503 on the lease route means the handler did not run', () => {
        const only503 = groupByKey(run.exchanges.filter((e) => !AFTER_RECOVERY.has(e.kind)))
          .filter(([k, list]) => k.startsWith('lease:') && list.every((e) => e.status === 503))
          .map(([k]) => k);
        expect(only503.filter((k) => (run.executionsBefore.get(k) ?? 0) !== 0)).toEqual([]);
      });

      it('no key runs twice, retries of 503s after recovery included; every fresh 201 ran once', () => {
        expect([...run.executionsAfter.entries()].filter(([, n]) => n > 1)).toEqual([]);
        const fresh = [...new Set(run.exchanges.filter(isFresh201).map((e) => id(e.route, e.key)))];
        expect(fresh.length).toBeGreaterThan(0);
        expect(fresh.filter((k) => run.executionsAfter.get(k) !== 1)).toEqual([]);
      });

      it('every fresh 201 is replayed byte for byte after recovery (lease: or still in flight, 409)', () => {
        const wrong = groupByKey(run.exchanges)
          .map(([, list]) => ({
            first: list.find((e) => isFresh201(e) && !AFTER_RECOVERY.has(e.kind)),
            check: list.find((e) => e.kind === 'replay-check'),
          }))
          .filter(({ first }) => first !== undefined)
          .filter(({ first, check }) => {
            if (check === undefined || first === undefined) {
              return true;
            }
            if (check.status === 201 && check.replayed && check.text === first.text) {
              return false;
            }
            // Lease mode: the response was sent although storing it failed; the key then stays
            // claimed until its lease ends (documented), which is a 409, never a second run.
            return !(
              first.route === 'lease' &&
              check.status === 409 &&
              check.problemType === KEY_IN_FLIGHT &&
              run.inFlightAfter.has(first.key)
            );
          })
          .map(({ first, check }) => ({
            first: first && describeExchange(run)(first),
            check: check && describeExchange(run)(check),
          }));
        expect(wrong).toEqual([]);
      });

      it('every replay, under load or after, carries the bytes of the one execution of its key', () => {
        const wrong = groupByKey(run.exchanges).flatMap(([, list]) => {
          const replays = list.filter((e) => e.status === 201 && e.replayed);
          const fresh = list.filter(isFresh201);
          // A replay without a fresh 201 of its key is fine (the first answer was a 503 whose
          // commit landed, transactional mode); two different bodies for one key are not.
          return new Set([...replays, ...fresh].map((e) => e.text)).size > 1
            ? [list.map(describeExchange(run))]
            : [];
        });
        expect(wrong).toEqual([]);
      });

      it(`serves fresh keys again within ${RECOVERY_MS} ms of the database's return, without a restart`, () => {
        expect(run.recoveryError).toBeNull();
        expect(run.recoveryMs).not.toBeNull();
        expect(run.recoveryMs).toBeLessThanOrEqual(RECOVERY_MS);
      });
    });
  });
});

function statusLabel(e: Exchange): string {
  if (e.status === 0) {
    return 'no answer';
  }
  return e.status === 201 && e.replayed ? '201 replayed' : String(e.status);
}

function groupByKey(exchanges: Exchange[]): [string, Exchange[]][] {
  const groups = new Map<string, Exchange[]>();
  for (const exchange of exchanges) {
    const list = groups.get(id(exchange.route, exchange.key)) ?? [];
    list.push(exchange);
    groups.set(id(exchange.route, exchange.key), list);
  }
  return [...groups.entries()];
}

function describeExchange(run: FaultRun) {
  return (e: Exchange) => ({
    route: e.route,
    key: e.key,
    kind: e.kind,
    status: e.status,
    latencyMs: e.latencyMs,
    contentType: e.contentType,
    body: e.text.slice(0, 160),
    cause: run.causes.get(e) ?? e.error ?? null,
  });
}

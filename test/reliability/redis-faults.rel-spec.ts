import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { IdempotencyModuleOptions } from '../../lib';
import { type RedisDurabilityOptions, redisStore } from '../../lib/redis';
import { CREATE_EXECUTIONS_SQL } from '../e2e/fixtures/executions';
import {
  type Sent,
  isFresh201,
  keysOf,
  ledgerAppModule,
  pay,
  dropReplicaLinks,
  primaryWithReplica,
  retryAll,
  roleOf,
  sha256,
  slotOfKey,
  slotOwners,
  startLoad,
  waitForPromotion,
} from '../utils/redis-faults';
import {
  type RedisCluster,
  type RedisServer,
  describeWithRedis,
  startRedisCluster,
  startRedisServer,
} from '../utils/redis-servers';
import { ADAPTERS, type AdapterName, type TestApp, createTestApp } from '../utils/test-app';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';
import { waitFor } from '../utils/wait-for';
import { PROFILE, byProfile } from './profile';

/*
 * Redis fails under load: a standalone redis-server SIGKILLed (and started again on its port) or
 * SIGSTOPped (and thawed), and on a 3+3 Cluster a primary SIGKILLed until its replica is
 * promoted. An app runs in process on a real port; its one idempotent route records every run of
 * its handler in PostgreSQL, where executions per key are counted. Every request must be answered
 * within a bound (503 problem+json while Redis is gone), no handler may run without a claim, no
 * key may run twice (the standalone server keeps an AOF with `appendfsync always`, so an
 * acknowledged write survives its kill; the Cluster's claims are confirmed with WAIT 1), and the
 * same app serves again once Redis is back. Without WAIT the failover's window is measured.
 */

const describeRedis = describeWithRedis();

const COMMAND_TIMEOUT_MS = 500;
const STORE_TIMEOUT_MS = 1000;
/** Far longer than this file runs: a key left in flight stays 409, it never runs twice. */
const LEASE_MS = 30 * 60_000;
const WORK_MS = 30;
/** Room for a busy, shared 2-core machine on top of the module's own bounds. */
const SLACK_MS = 3000;
/** A claim and a completion, each bounded by the store timeout, the handler's work, and slack. */
const MAX_LATENCY_MS = 2 * STORE_TIMEOUT_MS + WORK_MS + SLACK_MS;
/** Only ends a request that truly hangs, so that its latency is still measured. */
const CLIENT_TIMEOUT_MS = 60_000;
/** The same app must serve fresh keys again within this once Redis is back. */
const RECOVERY_MS = 20_000;

const WORKERS = byProfile(6, 16);
const BEFORE_FAULT_MS = byProfile(800, 4000);
const DOWN_MS = byProfile(1500, 5000);
/** Past the socket timeout (2 × the command timeout): the frozen connection is dropped too. */
const FREEZE_MS = byProfile(2500, 8000);
const AFTER_RECOVERY_MS = byProfile(800, 3000);
const FAULT_TIMEOUT_MS = byProfile(60_000, 180_000);
type Fault = 'SIGKILL' | 'SIGSTOP';
const FAULTS: Fault[] = byProfile(
  ['SIGKILL', 'SIGSTOP'],
  ['SIGKILL', 'SIGSTOP', 'SIGKILL', 'SIGSTOP'],
);

/** The Cluster's store: its command timeout, and WAIT's timeout below it. */
const CLUSTER_COMMAND_TIMEOUT_MS = 1000;
const CLUSTER_STORE_TIMEOUT_MS = 2000;
const WAIT_TIMEOUT_MS = 300;
const CLUSTER_MAX_LATENCY_MS = 2 * CLUSTER_STORE_TIMEOUT_MS + WORK_MS + SLACK_MS;
const CLUSTER_WORKERS = byProfile(8, 16);
const CLUSTER_BEFORE_KILL_MS = byProfile(1500, 5000);
const CLUSTER_AFTER_PROMOTION_MS = byProfile(1000, 3000);
/** How long the primary runs ahead of its replica before it is killed. */
const LAG_MS = 300;
/** cluster-node-timeout is 2 s: failure detection, election and promotion, with room. */
const PROMOTION_MS = 20_000;
const CLUSTER_TIMEOUT_MS = byProfile(90_000, 240_000);

const STORE_UNAVAILABLE = 'urn:nestjs-idempotency:problem:store-unavailable';
const PROBLEM = /^application\/problem\+json/;

/** What the module reported, by key hash. */
interface Outcomes {
  claimed: Set<string>;
  completed: Set<string>;
}

function outcomeRecorder(): Outcomes & { onOutcome: IdempotencyModuleOptions['onOutcome'] } {
  const claimed = new Set<string>();
  const completed = new Set<string>();
  return {
    claimed,
    completed,
    onOutcome: (event) => {
      if (event.outcome === 'claimed') {
        claimed.add(event.keyHash ?? '');
      } else if (event.outcome === 'completed') {
        completed.add(event.keyHash ?? '');
      }
    },
  };
}

const summary = (item: Sent) => ({
  key: item.key,
  kind: item.kind,
  status: item.answer.status,
  latencyMs: item.answer.latencyMs,
  error: item.answer.error,
});

const histogram = (sent: Sent[]) => {
  const counts: Record<string, number> = {};
  for (const item of sent) {
    const label = `${item.answer.status}${item.answer.headers['idempotent-replayed'] ? 'r' : ''}`;
    counts[label] = (counts[label] ?? 0) + 1;
  }
  return counts;
};

const problemType = (item: Sent) =>
  (JSON.parse(item.answer.body.toString('utf8')) as { type?: string }).type;

describeRedis(`Redis faults under load (profile ${PROFILE})`, () => {
  let db: TestDatabase;
  let ledger: pg.Pool;
  const run = randomUUID().slice(0, 8);

  beforeAll(async () => {
    db = await createTestDatabase();
    await db.query(CREATE_EXECUTIONS_SQL);
    ledger = new pg.Pool({ connectionString: db.url, max: 10 });
    ledger.on('error', () => undefined);
  });

  afterAll(async () => {
    await ledger?.end();
    await db?.drop();
  });

  /** Runs of the handler per key with `prefix`, counted in PostgreSQL. */
  const runsByKey = async (prefix: string) =>
    new Map(
      (
        await db.query<{ idem_key: string; n: number }>(
          'SELECT idem_key, count(*)::int AS n FROM executions WHERE starts_with(idem_key, $1) GROUP BY idem_key',
          [prefix],
        )
      ).map((row) => [row.idem_key, row.n]),
    );

  /** The checks every scenario shares: bounded answers, claims before runs, no key run twice. */
  const expectSafe = (
    sent: Sent[],
    runs: Map<string, number>,
    outcomes: Outcomes,
    maxLatencyMs: number,
  ) => {
    // Every request answered, within the bound: no hang, no dropped connection.
    expect(
      sent
        .filter((item) => item.answer.status === 0 || item.answer.latencyMs > maxLatencyMs)
        .map(summary),
    ).toEqual([]);
    expect(
      sent.filter((item) => ![201, 409, 503].includes(item.answer.status)).map(summary),
    ).toEqual([]);
    // A 503 is the store-unavailable problem, nothing else.
    for (const item of sent.filter((entry) => entry.answer.status === 503)) {
      expect(String(item.answer.headers['content-type'])).toMatch(PROBLEM);
      expect(problemType(item)).toBe(STORE_UNAVAILABLE);
    }
    // No run without a claim the module saw succeed; no key run twice.
    expect([...runs.keys()].filter((key) => !outcomes.claimed.has(sha256(key)))).toEqual([]);
    expect([...runs].filter(([, n]) => n > 1)).toEqual([]);
    // Every fresh 201 was a run of its own key.
    expect(
      sent
        .filter(isFresh201)
        .filter((item) => runs.get(item.key) !== 1)
        .map(summary),
    ).toEqual([]);
  };

  /**
   * Polls fresh keys on `baseUrl` (those `probes` accepts) until one answers 201; returns how
   * long that took.
   */
  const recovery = async (baseUrl: string, prefix: string, probes = (_key: string) => true) => {
    const started = Date.now();
    for (let i = 0; ; i++) {
      const key = `${prefix}-probe-${i}`;
      if (!probes(key)) {
        continue;
      }
      const answer = await pay(baseUrl, key, i, 0, CLIENT_TIMEOUT_MS);
      if (answer.status === 201) {
        return Date.now() - started;
      }
      if (Date.now() - started > RECOVERY_MS) {
        throw new Error(
          `no 201 within ${RECOVERY_MS} ms after Redis came back (last ${answer.status})`,
        );
      }
      await sleep(100);
    }
  };

  describe('standalone redis-server (AOF, appendfsync always)', () => {
    let server: RedisServer;

    beforeAll(async () => {
      server = await startRedisServer(['--appendonly', 'yes', '--appendfsync', 'always']);
    });

    afterAll(async () => {
      server?.resume();
      await server?.stop();
    });

    describe.each(ADAPTERS)('%s', (adapter: AdapterName) => {
      let app: TestApp;
      let baseUrl: string;
      const outcomes = outcomeRecorder();

      beforeAll(async () => {
        app = await createTestApp(
          adapter,
          ledgerAppModule(
            {
              store: redisStore({
                redis: { host: '127.0.0.1', port: server.port },
                commandTimeoutMs: COMMAND_TIMEOUT_MS,
              }),
              storeTimeoutMs: STORE_TIMEOUT_MS,
              lockTimeoutMs: LEASE_MS,
              onOutcome: outcomes.onOutcome,
            },
            ledger,
          ),
        );
        baseUrl = await app.app.getUrl();
      });

      afterAll(async () => {
        server?.resume();
        await app?.close();
      });

      it.each(FAULTS.map((fault, round) => [fault, round]))(
        'redis-server %s under load (round %i): bounded 503s, no key run twice, same app recovers',
        async (fault, round) => {
          const prefix = `${run}-${adapter}-${fault}-${round}`;
          const load = startLoad({
            baseUrl,
            prefix,
            workers: WORKERS,
            duplicateEvery: 3,
            workMs: WORK_MS,
            clientTimeoutMs: CLIENT_TIMEOUT_MS,
          });
          await sleep(BEFORE_FAULT_MS);
          const faultAt = Date.now();
          if (fault === 'SIGKILL') {
            await server.kill();
            await sleep(DOWN_MS);
            await server.restart();
          } else {
            server.pause();
            await sleep(FREEZE_MS);
            server.resume();
          }
          const backAt = Date.now();
          const recoveryMs = await recovery(baseUrl, prefix);
          await sleep(AFTER_RECOVERY_MS);
          const sent = await load.stop();

          // Once more, every key of the run, Redis being back: nothing may run a second time.
          const retries = await retryAll(baseUrl, sent, 8, CLIENT_TIMEOUT_MS);
          const runs = await runsByKey(`${prefix}-`);
          const all = [...sent, ...retries];
          const fiveOhThrees = sent.filter((item) => item.answer.status === 503);
          console.log(
            `[redis-faults] ${adapter} ${fault}: ${sent.length} requests ${JSON.stringify(histogram(sent))}, retries ${JSON.stringify(histogram(retries))}, max latency ${Math.max(...sent.map((item) => item.answer.latencyMs))} ms, recovered in ${recoveryMs} ms`,
          );

          expectSafe(all, runs, outcomes, MAX_LATENCY_MS);
          // The fault did bite, and only the fault: 503s, none sent well before it.
          expect(fiveOhThrees.length).toBeGreaterThan(0);
          expect(
            fiveOhThrees
              .filter((item) => item.answer.startedAt < faultAt - MAX_LATENCY_MS)
              .map(summary),
          ).toEqual([]);
          // Served again by the same app after the fault: fresh 201s sent after Redis was back.
          expect(
            sent.filter((item) => isFresh201(item) && item.answer.startedAt > backAt).length,
          ).toBeGreaterThan(0);
          // Redis was back for every retry: none refused, and every acknowledged completion (the
          // module reported it) survived the fault as an exact replay.
          expect(
            retries.filter((item) => ![201, 409].includes(item.answer.status)).map(summary),
          ).toEqual([]);
          const executed = new Map(sent.filter(isFresh201).map((item) => [item.key, item]));
          for (const retry of retries) {
            const first = executed.get(retry.key);
            if (first && outcomes.completed.has(sha256(retry.key))) {
              expect([
                retry.key,
                retry.answer.status,
                retry.answer.headers['idempotent-replayed'],
              ]).toEqual([retry.key, 201, 'true']);
              expect(retry.answer.body).toEqual(first.answer.body);
            }
          }
        },
        FAULT_TIMEOUT_MS,
      );
    });
  });

  describe('Redis Cluster, a primary SIGKILLed under load', () => {
    let cluster: RedisCluster;
    /** Ports of primaries killed so far: the next scenario kills another. */
    const killed: number[] = [];
    const apps: TestApp[] = [];

    beforeAll(async () => {
      cluster = await startRedisCluster();
    }, 60_000);

    afterAll(async () => {
      await Promise.all(apps.map((app) => app.close()));
      await cluster?.stop();
    });

    /** Kills a primary with a replica under load, waits for the promotion, retries every key. */
    const failover = async (label: string, durability: RedisDurabilityOptions | undefined) => {
      const outcomes = outcomeRecorder();
      const app = await createTestApp(
        'express',
        ledgerAppModule(
          {
            store: redisStore({
              cluster: { nodes: cluster.nodes },
              commandTimeoutMs: CLUSTER_COMMAND_TIMEOUT_MS,
              durability,
            }),
            storeTimeoutMs: CLUSTER_STORE_TIMEOUT_MS,
            lockTimeoutMs: LEASE_MS,
            onOutcome: outcomes.onOutcome,
          },
          ledger,
        ),
      );
      apps.push(app);
      const baseUrl = await app.app.getUrl();
      const { primary, replica } = await primaryWithReplica(cluster, killed);
      const slots = (await slotOwners(replica.port)).filter((owner) => owner.port === primary.port);
      const onKilled = (key: string) => {
        const slot = slotOfKey(key);
        return slots.some((range) => slot >= range.from && slot <= range.to);
      };

      const prefix = `${run}-cluster-${label}`;
      const load = startLoad({
        baseUrl,
        prefix,
        workers: CLUSTER_WORKERS,
        duplicateEvery: 4,
        workMs: WORK_MS,
        clientTimeoutMs: CLIENT_TIMEOUT_MS,
      });
      await sleep(CLUSTER_BEFORE_KILL_MS);
      // Replication falls behind first, as after a network blip: the replica is frozen so that it
      // cannot reconnect, its link is cut, and for LAG_MS the primary acknowledges writes that
      // reach no replica. Then the primary dies and the thawed replica is promoted.
      replica.pause();
      let killAt: number;
      const dropAt = Date.now();
      try {
        expect(await dropReplicaLinks(primary.port)).toBe(1);
        await sleep(LAG_MS);
        killAt = Date.now();
        await primary.kill();
      } finally {
        replica.resume();
      }
      killed.push(primary.port);
      let promotedAt: number;
      try {
        await waitForPromotion(cluster, replica, [primary.port], PROMOTION_MS);
        promotedAt = Date.now();
        await sleep(CLUSTER_AFTER_PROMOTION_MS);
      } catch (error) {
        await load.stop();
        throw error;
      }
      const sent = await load.stop();
      // The killed primary comes back empty as a replica of the promoted one, so that WAIT 1 can
      // be met again on its slots.
      await primary.restart();
      await waitFor(async () => (await roleOf(primary.port))?.role === 'slave', 30_000, 200);
      await waitFor(
        async () => {
          const role = await roleOf(replica.port);
          return role?.role === 'master' && role.replicas.includes(primary.port);
        },
        30_000,
        200,
      );
      // Fresh keys on the promoted primary's slots are served again.
      const recoveryMs = await recovery(baseUrl, `${prefix}-after`, onKilled);

      const retries = await retryAll(baseUrl, sent, 8, CLIENT_TIMEOUT_MS);
      const runs = await runsByKey(`${prefix}-`);
      const ranTwice = [...runs].filter(([, n]) => n > 1).map(([key]) => key);
      const ackedOnKilled = sent.filter(
        (item) => isFresh201(item) && onKilled(item.key) && item.answer.startedAt < killAt,
      );
      /** Runs answered 201 on the killed primary's slots, sent once its replica was cut off. */
      const ackedUnreplicated = sent.filter(
        (item) => isFresh201(item) && onKilled(item.key) && item.answer.startedAt >= dropAt,
      );
      console.log(
        `[redis-faults] cluster failover, ${durability ? `WAIT ${durability.replicas} (${durability.timeoutMs} ms)` : 'no WAIT'}: ${keysOf(sent).filter(onKilled).length} keys on the killed primary, ${ackedOnKilled.length} of them answered 201 before the kill, ${ackedUnreplicated.filter((item) => item.answer.startedAt < killAt).length} of those sent in the ${LAG_MS} ms its replica was cut off; keys run twice: ${ranTwice.length} of ${runs.size}; promotion ${promotedAt - killAt} ms; ${sent.length} requests ${JSON.stringify(histogram(sent))}; retries ${JSON.stringify(histogram(retries))}; recovered in ${recoveryMs} ms`,
      );
      await app.close();
      apps.splice(apps.indexOf(app), 1);
      return { sent, retries, runs, outcomes, ranTwice, ackedOnKilled, ackedUnreplicated };
    };

    it(
      'with WAIT 1: the replica is promoted and not one key runs twice',
      async () => {
        const result = await failover('wait', { replicas: 1, timeoutMs: WAIT_TIMEOUT_MS });
        expect(result.ranTwice).toEqual([]);
        // WAIT refused every claim the cut-off replica could not confirm: none ran.
        expect(result.ackedUnreplicated.map((item) => item.key)).toEqual([]);
        expectSafe(
          [...result.sent, ...result.retries],
          result.runs,
          result.outcomes,
          CLUSTER_MAX_LATENCY_MS,
        );
        // The kill did meet finished keys on its slots: the promoted replica had to keep them.
        expect(result.ackedOnKilled.length).toBeGreaterThan(0);
      },
      CLUSTER_TIMEOUT_MS,
    );

    it(
      'without WAIT: the window is measured (keys run twice are printed, not asserted)',
      async () => {
        const result = await failover('no-wait', undefined);
        // Everything but the duplicate runs still holds: bounded answers, claims before runs.
        const once = new Map([...result.runs].map(([key]) => [key, 1]));
        expectSafe(
          [...result.sent, ...result.retries],
          once,
          result.outcomes,
          CLUSTER_MAX_LATENCY_MS,
        );
        expect(result.ackedOnKilled.length).toBeGreaterThan(0);
      },
      CLUSTER_TIMEOUT_MS,
    );
  });
});

import { randomUUID } from 'node:crypto';
import type { SampleAppProcess } from '../utils/sample-app-process';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';
import { waitFor } from '../utils/wait-for';
import { PROFILE, byProfile } from './profile';
import { isInFlightConflict, problemType } from './support/load-answers';
import { type HttpResult, LoadClient, isReplayed, runBounded } from './support/load-driver';
import { writeReport } from './support/load-report';
import { LoadStats } from './support/load-stats';
import {
  allAttempts,
  attemptsPerKey,
  earlyReruns,
  overlappingAttempts,
  scopedKey,
} from './support/processes-attempts';
import { type AppSpec, ProcessCluster } from './support/processes-cluster';
import { RssSampler } from './support/rss-sampler';

/**
 * Scenario 5: soak. A long mixed run on two processes (Express and Fastify) with a short TTL and
 * an active purge: new keys, replays, in-flight conflicts, mismatched reuses, reuses after expiry,
 * declines and transfers. Memory must stay flat, the table bounded by the TTL, every execution
 * accounted for, and no error but the expected ones.
 */

const SOAK_MS = byProfile(25_000, 300_000);
const WORKERS = byProfile(8, 8);
const TTL_MS = byProfile(4_000, 5_000);
const PURGE_INTERVAL_MS = 1_000;
/** An expired row must be gone within this after its expiry (purge interval plus a busy machine). */
const PURGE_SLACK_MS = 5_000;
const LEASE_MS = 30_000;
const LATENCY_MS = 20;
const RSS_INTERVAL_MS = byProfile(1_000, 3_000);
const TABLE_INTERVAL_MS = 1_000;
/**
 * Allowed growth of a process's RSS between the median of the second quarter of the run and that
 * of the last quarter: the run fails only when both the absolute and the relative bound are
 * exceeded. Loose in the fast profile, whose run is too short for V8's heap to settle.
 */
const RSS_GROWTH = byProfile({ mb: 80, ratio: 0.6 }, { mb: 40, ratio: 0.3 });
const ACCOUNTS = 20;
const ACCOUNT_BALANCE = 100_000_000;
const CARD_LIMIT = 1_000_000;
const CLIENTS = ['soak-a', 'soak-b', 'soak-c'];
const REQUEST_TIMEOUT_MS = 30_000;
const TEST_TIMEOUT_MS = SOAK_MS + 180_000;

const MISMATCH_PROBLEM = 'urn:nestjs-idempotency:problem:key-mismatch';

type Operation =
  'new-payment' | 'decline' | 'replay' | 'conflict' | 'mismatch' | 'expired-reuse' | 'transfer';

/** How often each operation is picked (weights). */
const MIX: Array<[Operation, number]> = [
  ['new-payment', 30],
  ['decline', 5],
  ['replay', 20],
  ['conflict', 10],
  ['mismatch', 10],
  ['expired-reuse', 10],
  ['transfer', 15],
];

/** What the client knows of one payment key. */
interface PaymentKey {
  clientId: string;
  key: string;
  body: { amount: number; currency: string; reference: string };
  /** The last execution's answer, and when its request was sent and answered (client clock). */
  status: number;
  text: string;
  executedSentAt: number;
  executedAt: number;
  /** Executions the client has seen (answers that were not replays). */
  executions: number;
  /** Used by an operation right now: others leave it alone. */
  busy: boolean;
}

interface PoolEntry {
  record: PaymentKey;
  executedAt: number;
}

describe('reliability: soak', () => {
  let db: TestDatabase;
  let cluster: ProcessCluster;
  let apps: SampleAppProcess[] = [];
  const client = new LoadClient();
  const run = randomUUID().slice(0, 8);
  const specs: AppSpec[] = (['express', 'fastify'] as const).map((adapter) => ({
    adapter,
    paymentLatencyMs: LATENCY_MS,
    lockTimeoutMs: LEASE_MS,
    ttlMs: TTL_MS,
    purgeIntervalMs: PURGE_INTERVAL_MS,
  }));

  beforeAll(async () => {
    db = await createTestDatabase();
    cluster = new ProcessCluster(db);
    apps = await cluster.startAll(specs);
  }, TEST_TIMEOUT_MS);

  afterAll(async () => {
    client.close();
    await cluster?.killAll();
    await db?.drop();
  });

  it(
    `keeps memory flat, the table bounded and every execution accounted for (${PROFILE})`,
    async () => {
      const accounts = (
        await db.query<{ id: string }>(
          'INSERT INTO accounts (balance) SELECT $1::int FROM generate_series(1, $2::int) RETURNING id',
          [ACCOUNT_BALANCE, ACCOUNTS],
        )
      ).map((row) => row.id);

      const stats = new LoadStats();
      const violations: string[] = [];
      let excused = 0;
      let sequence = 0;
      let sent = 0;
      const payments = new Map<string, PaymentKey>();
      /** Executed payment keys, by execution time: young enough to replay... */
      const recent: PoolEntry[] = [];
      /** ... and older ones, which become reusable once surely expired. */
      const aging: PoolEntry[] = [];
      const movedMoney: Array<{ from: string; to: string; amount: number }> = [];
      let transferExecutions = 0;

      const appFor = () => apps[sent++ % apps.length];
      const newKey = () => `soak-${run}-${sequence++}`;
      const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)];
      /** A new payment key, not yet executed, taken by the operation that creates it. */
      const trackPayment = (clientId: string, key: string, body: PaymentKey['body']) => {
        const record: PaymentKey = {
          clientId,
          key,
          body,
          status: 0,
          text: '',
          executedSentAt: 0,
          executedAt: 0,
          executions: 0,
          busy: true,
        };
        payments.set(scopedKey(clientId, key), record);
        return record;
      };

      const send = async (
        operation: Operation,
        path: '/payments' | '/transfers',
        clientId: string,
        key: string,
        body: unknown,
        app: SampleAppProcess = appFor(),
      ) => {
        const result = await client.send({
          baseUrl: app.url,
          method: 'POST',
          path,
          headers: { 'idempotency-key': key, authorization: `Bearer ${clientId}` },
          body,
          timeoutMs: REQUEST_TIMEOUT_MS,
        });
        stats.record(operation, result);
        return result;
      };

      const explain = (operation: Operation, key: string, result: HttpResult) =>
        `${operation} ${key}: ${result.status ?? result.error} replayed=${isReplayed(result)} ${result.text.slice(0, 120)}`;

      /** An answer of an execution of a payment key (not a replay, a status that is stored). */
      const executedPayment = (result: HttpResult) =>
        (result.status === 201 || result.status === 402) && !isReplayed(result);

      const noteExecution = (record: PaymentKey, body: PaymentKey['body'], result: HttpResult) => {
        record.body = body;
        record.status = result.status ?? 0;
        record.text = result.text;
        record.executedSentAt = result.sentAt;
        record.executedAt = result.settledAt;
        record.executions++;
        recent.push({ record, executedAt: record.executedAt });
      };

      /**
       * A key that was executed again although the last execution was expected to be replayed or
       * refused. Only legitimate when that execution's response may have expired meanwhile: it was
       * stored after its request was sent, so not before `executedSentAt + TTL`.
       */
      const unexpectedRerun = (
        operation: Operation,
        record: PaymentKey,
        body: PaymentKey['body'],
        result: HttpResult,
      ) => {
        if (result.settledAt - record.executedSentAt >= TTL_MS) {
          excused++;
        } else {
          violations.push(`${explain(operation, record.key, result)} (ran again within the TTL)`);
        }
        noteExecution(record, body, result);
      };

      const newPayment = async (operation: 'new-payment' | 'decline') => {
        const key = newKey();
        const clientId = pick(CLIENTS);
        const amount =
          operation === 'decline' ? CARD_LIMIT + 1 : 1 + Math.floor(Math.random() * 5000);
        const body = { amount, currency: 'EUR', reference: key };
        const record = trackPayment(clientId, key, body);
        const result = await send(operation, '/payments', clientId, key, body);
        const expected = operation === 'decline' ? 402 : 201;
        if (result.status === expected && !isReplayed(result)) {
          noteExecution(record, body, result);
        } else {
          violations.push(explain(operation, key, result));
        }
        record.busy = false;
      };

      /** A free key executed within the last quarter of the TTL, or none. */
      const recentKey = (): PaymentKey | undefined => {
        const now = Date.now();
        while (recent.length > 0 && now - recent[0].executedAt > TTL_MS / 4) {
          aging.push(recent.shift() as PoolEntry);
        }
        for (let attempt = 0; attempt < 5 && recent.length > 0; attempt++) {
          const entry = pick(recent);
          if (!entry.record.busy && entry.record.executedAt === entry.executedAt) {
            return entry.record;
          }
        }
        return undefined;
      };

      /** A free key whose last execution is surely expired (by a second more than the TTL). */
      const expiredKey = (): PaymentKey | undefined => {
        recentKey();
        const now = Date.now();
        while (aging.length > 0) {
          const entry = aging[0];
          if (entry.record.executedAt !== entry.executedAt) {
            aging.shift();
            continue;
          }
          if (now - entry.executedAt <= TTL_MS + 1_000 || entry.record.busy) {
            return undefined;
          }
          aging.shift();
          return entry.record;
        }
        return undefined;
      };

      const replay = async (record: PaymentKey) => {
        const result = await send('replay', '/payments', record.clientId, record.key, record.body);
        if (isReplayed(result) && result.status === record.status && result.text === record.text) {
          return;
        }
        if (executedPayment(result)) {
          unexpectedRerun('replay', record, record.body, result);
        } else {
          violations.push(explain('replay', record.key, result));
        }
      };

      const mismatch = async (record: PaymentKey) => {
        const body = { ...record.body, amount: record.body.amount + 1 };
        const result = await send('mismatch', '/payments', record.clientId, record.key, body);
        if (result.status === 422 && problemType(result) === MISMATCH_PROBLEM) {
          return;
        }
        if (executedPayment(result)) {
          unexpectedRerun('mismatch', record, body, result);
        } else {
          violations.push(explain('mismatch', record.key, result));
        }
      };

      const expiredReuse = async (record: PaymentKey) => {
        const result = await send(
          'expired-reuse',
          '/payments',
          record.clientId,
          record.key,
          record.body,
        );
        if (executedPayment(result)) {
          noteExecution(record, record.body, result);
        } else {
          violations.push(`${explain('expired-reuse', record.key, result)} (expired key kept)`);
        }
      };

      /** Two requests with a new key at once, on both processes: one runs, one is refused. */
      const conflict = async () => {
        const key = newKey();
        const clientId = pick(CLIENTS);
        const body = {
          amount: 1 + Math.floor(Math.random() * 5000),
          currency: 'EUR',
          reference: key,
        };
        const record = trackPayment(clientId, key, body);
        const results = await Promise.all(
          apps.map((app) => send('conflict', '/payments', clientId, key, body, app)),
        );
        const executed = results.filter(executedPayment);
        const others = results.filter((result) => !executedPayment(result));
        const fine = (result: HttpResult) =>
          isInFlightConflict(result) ||
          (isReplayed(result) && executed.length === 1 && result.text === executed[0].text);
        if (executed.length === 1 && executed[0].status === 201 && others.every(fine)) {
          noteExecution(record, body, executed[0]);
        } else {
          for (const result of results) {
            violations.push(`${explain('conflict', key, result)} (pair)`);
          }
          executed.forEach((result) => noteExecution(record, body, result));
        }
        record.busy = false;
      };

      const transfer = async () => {
        const key = newKey();
        const clientId = pick(CLIENTS);
        const from = pick(accounts);
        let to = pick(accounts);
        while (to === from) {
          to = pick(accounts);
        }
        const body = { from, to, amount: 1 + Math.floor(Math.random() * 100) };
        const first = await send('transfer', '/transfers', clientId, key, body);
        if (first.status !== 201 || isReplayed(first)) {
          violations.push(explain('transfer', key, first));
          return;
        }
        transferExecutions++;
        movedMoney.push(body);
        if (Math.random() < 0.3) {
          const again = await send('transfer', '/transfers', clientId, key, body);
          if (!(isReplayed(again) && again.status === 201 && again.text === first.text)) {
            violations.push(`${explain('transfer', key, again)} (replay)`);
          }
        }
      };

      const operate = async (operation: Operation) => {
        switch (operation) {
          case 'new-payment':
          case 'decline':
            return newPayment(operation);
          case 'conflict':
            return conflict();
          case 'transfer':
            return transfer();
          case 'replay':
          case 'mismatch':
          case 'expired-reuse': {
            const record = operation === 'expired-reuse' ? expiredKey() : recentKey();
            if (!record) {
              return newPayment('new-payment');
            }
            record.busy = true;
            try {
              if (operation === 'replay') {
                await replay(record);
              } else if (operation === 'mismatch') {
                await mismatch(record);
              } else {
                await expiredReuse(record);
              }
            } finally {
              record.busy = false;
            }
          }
        }
      };

      const totalWeight = MIX.reduce((sum, [, weight]) => sum + weight, 0);
      const nextOperation = (): Operation => {
        let roll = Math.random() * totalWeight;
        for (const [operation, weight] of MIX) {
          roll -= weight;
          if (roll < 0) {
            return operation;
          }
        }
        return 'new-payment';
      };

      // The table, sampled: its size, and rows that outlived their expiry by more than the slack.
      const tableSamples: Array<{ atMs: number; rows: number; stale: number }> = [];
      const sampleTable = async () => {
        const [row] = await db.query<{ rows: number; stale: number }>(
          `SELECT count(*)::int AS rows,
                  count(*) FILTER (WHERE expires_at < now() - $1::float8 * interval '1 millisecond')::int AS stale
             FROM idempotency_records`,
          [PURGE_SLACK_MS],
        );
        tableSamples.push({ atMs: Date.now() - started, ...row });
      };

      const rss = new RssSampler(
        apps.map((app) => app.pid),
        RSS_INTERVAL_MS,
      );
      const started = Date.now();
      const deadline = started + SOAK_MS;
      rss.start();
      let sampling = true;
      const tableSampler = (async () => {
        while (sampling) {
          await sampleTable();
          await new Promise((resolve) => setTimeout(resolve, TABLE_INTERVAL_MS));
        }
      })();
      await runBounded(WORKERS, WORKERS, async () => {
        while (Date.now() < deadline) {
          await operate(nextOperation());
        }
      });
      rss.stop();
      sampling = false;
      await tableSampler;
      const loadMs = Date.now() - started;

      // After the load the purge must empty the table: every key expires within the TTL.
      const drainStarted = Date.now();
      let drained = true;
      await waitFor(
        async () =>
          (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM idempotency_records'))[0]
            .n === 0,
        TTL_MS + PURGE_SLACK_MS + 30_000,
        250,
      ).catch(() => (drained = false));
      const drainMs = Date.now() - drainStarted;

      // What the database holds.
      const attempts = await allAttempts(db);
      const perKey = await attemptsPerKey(db);
      const overlaps = await overlappingAttempts(db, null);
      const reruns = await earlyReruns(db, TTL_MS);
      const transferRows = (
        await db.query<{ n: number }>('SELECT count(*)::int AS n FROM transfers')
      )[0].n;
      const balances = new Map(
        (
          await db.query<{ id: string; balance: number }>(
            'SELECT id, balance FROM accounts WHERE id = ANY($1::uuid[])',
            [accounts],
          )
        ).map((row) => [row.id, row.balance]),
      );
      const expectedBalances = new Map(accounts.map((id) => [id, ACCOUNT_BALANCE]));
      for (const { from, to, amount } of movedMoney) {
        expectedBalances.set(from, (expectedBalances.get(from) ?? 0) - amount);
        expectedBalances.set(to, (expectedBalances.get(to) ?? 0) + amount);
      }
      const observedExecutions = [...payments.values()].reduce(
        (sum, record) => sum + record.executions,
        0,
      );
      const unexplained = [...payments.entries()]
        .filter(([id, record]) => (perKey.get(id) ?? 0) !== record.executions)
        .map(
          ([id, record]) =>
            `${id}: ${perKey.get(id) ?? 0} in the database, ${record.executions} seen`,
        );
      const logLines = apps.map((app) => ({
        pid: app.pid,
        errors: app
          .output()
          .split('\n')
          .filter((line) => /\bERROR\b/.test(line)),
        warnings: app
          .output()
          .split('\n')
          .filter((line) => /\bWARN\b/.test(line)),
      }));
      const summary = stats.summary();
      const memory = apps.map((app) => rss.summary(app.pid));

      writeReport('soak', {
        processes: apps.map((app, index) => `${specs[index].adapter}:${app.pid}`),
        soakMs: loadMs,
        ttlMs: TTL_MS,
        purgeIntervalMs: PURGE_INTERVAL_MS,
        requests: summary.requests,
        requestsPerSecond: Math.round((summary.requests / loadMs) * 1000),
        executions: { payments: attempts.length, transfers: transferRows },
        executionsSeenByClients: { payments: observedExecutions, transfers: transferExecutions },
        duplicates: unexplained.length + reruns.length + overlaps.length,
        histogram: summary.histogram,
        replayed: summary.replayed,
        fiveXxByCause: summary.fiveXxByCause,
        latencyMs: summary.latencyMs,
        latencyByOperationMs: Object.fromEntries(
          stats.labels().map((label) => {
            const { requests, latencyMs } = stats.summary(label);
            return [label, { requests, p50: latencyMs.p50, p99: latencyMs.p99 }];
          }),
        ),
        histogramByOperation: Object.fromEntries(
          stats.labels().map((label) => [label, stats.summary(label).histogram]),
        ),
        rerunsAfterExpiryExcused: excused,
        violations: violations.slice(0, 20),
        table: {
          maxRows: Math.max(...tableSamples.map((sample) => sample.rows)),
          lastRows: tableSamples[tableSamples.length - 1]?.rows,
          maxStaleRows: Math.max(...tableSamples.map((sample) => sample.stale)),
          keysCreated: sequence,
          drainedToEmptyInMs: drained ? drainMs : null,
        },
        rss: memory,
        resentOnStaleSocket: client.resentOnStaleSocket,
        logErrorLines: logLines.map((entry) => entry.errors.length),
        logWarnLines: logLines.map((entry) => entry.warnings.length),
      });

      // Only the expected answers, each where it was expected.
      expect(violations).toEqual([]);
      const allowed = new Set(['201', '402', '409', '422']);
      expect(Object.keys(summary.histogram).filter((status) => !allowed.has(status))).toEqual([]);
      expect(summary.fiveXxByCause).toEqual({});
      expect(stats.summary('conflict').histogram['409'] ?? 0).toBeGreaterThan(0);
      expect(stats.summary('mismatch').histogram['422'] ?? 0).toBeGreaterThan(0);
      expect(stats.summary('expired-reuse').requests).toBeGreaterThan(0);
      expect(logLines.flatMap((entry) => [...entry.errors, ...entry.warnings])).toEqual([]);

      // Executions, from the database: each one a client saw, and no other.
      expect(unexplained).toEqual([]);
      expect(attempts.length).toBe(observedExecutions);
      expect(attempts.filter((row) => row.finished_at === null)).toEqual([]);
      expect(overlaps).toEqual([]);
      expect(reruns).toEqual([]);
      expect(transferRows).toBe(transferExecutions);
      expect(Object.fromEntries(balances)).toEqual(Object.fromEntries(expectedBalances));

      // The table stays bounded by the TTL: nothing outlives its expiry by more than the slack,
      // and once the load stops, the purge empties it.
      expect(tableSamples.length).toBeGreaterThan(SOAK_MS / TABLE_INTERVAL_MS / 2);
      expect(tableSamples.filter((sample) => sample.stale > 0)).toEqual([]);
      expect(drained).toBe(true);

      // Memory stays flat: the last quarter's median against the second quarter's (warm).
      for (const usage of memory) {
        expect(usage.samples).toBeGreaterThanOrEqual(8);
        const bound = Math.max(RSS_GROWTH.mb, RSS_GROWTH.ratio * usage.secondQuarterMedianMb);
        expect([usage.pid, usage.growthMb, usage.growthMb <= bound]).toEqual([
          usage.pid,
          usage.growthMb,
          true,
        ]);
      }
    },
    TEST_TIMEOUT_MS,
  );
});

import { randomUUID } from 'node:crypto';
import type { SampleAppProcess } from '../utils/sample-app-process';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';
import { byProfile } from './profile';
import { classifyAnswers, earlyWaitConflicts, replayMismatches } from './support/load-answers';
import { type HttpResult, LoadClient, runBounded, shuffled } from './support/load-driver';
import { writeReport } from './support/load-report';
import { LoadStats } from './support/load-stats';
import { allAttempts, attemptsPerKey, scopedKey } from './support/processes-attempts';
import { type AppSpec, ProcessCluster } from './support/processes-cluster';

/**
 * Scenario 1: many instances, one key. Three sample-app processes share one PostgreSQL; requests
 * are spread over them round-robin. Whatever the clients see, the database must show one execution
 * per key.
 */

/** The simulated card network's latency: long enough that duplicates overlap the execution. */
const LATENCY_MS = 300;
/** Far above any execution here, so that no lease expires and nothing is taken over. */
const LEASE_MS = 60_000;
const APPS: AppSpec[] = (['express', 'fastify', 'express'] as const).map((adapter) => ({
  adapter,
  paymentLatencyMs: LATENCY_MS,
  lockTimeoutMs: LEASE_MS,
}));
/** Parallel requests with one key, and how many are in flight at once. */
const ONE_KEY_REQUESTS = byProfile(200, 600);
const ONE_KEY_CONCURRENCY = byProfile(200, 300);
/** (client, key) pairs of the many-keys run (half payments, half transfers), duplicates of each. */
const KEYS = byProfile(60, 300);
const DUPLICATES = byProfile(5, 10);
const MANY_KEYS_CONCURRENCY = byProfile(48, 96);
/** Each request must be answered within this (a wait-mode duplicate waits up to 10 s). */
const REQUEST_TIMEOUT_MS = 30_000;
const TEST_TIMEOUT_MS = byProfile(120_000, 600_000);
const START_BALANCE = 1_000_000;
const TRANSFER_AMOUNT = 100;

describe('reliability: many instances, one key', () => {
  let db: TestDatabase;
  let cluster: ProcessCluster;
  let apps: SampleAppProcess[] = [];
  const client = new LoadClient();
  const report: Record<string, unknown> = {};
  const run = randomUUID().slice(0, 8);

  beforeAll(async () => {
    db = await createTestDatabase();
    cluster = new ProcessCluster(db);
    const started = Date.now();
    apps = await cluster.startAll(APPS);
    report.processes = apps.map((app, index) => `${APPS[index].adapter}:${app.pid}`);
    report.bootMs = Date.now() - started;
  }, TEST_TIMEOUT_MS);

  afterAll(async () => {
    report.resentOnStaleSocket = client.resentOnStaleSocket;
    client.close();
    await cluster?.killAll();
    await db?.drop();
    writeReport('multi-instance', report);
  });

  /** The app that the `n`-th request goes to: round-robin over the processes. */
  const appFor = (n: number) => apps[n % apps.length];

  const pay = (n: number, key: string, clientId: string, body: unknown) =>
    client.send({
      baseUrl: appFor(n).url,
      method: 'POST',
      path: '/payments',
      headers: { 'idempotency-key': key, authorization: `Bearer ${clientId}` },
      body,
      timeoutMs: REQUEST_TIMEOUT_MS,
    });

  const transfer = (n: number, key: string, clientId: string, body: unknown) =>
    client.send({
      baseUrl: appFor(n).url,
      method: 'POST',
      path: '/transfers',
      headers: { 'idempotency-key': key, authorization: `Bearer ${clientId}` },
      body,
      timeoutMs: REQUEST_TIMEOUT_MS,
    });

  const count = async (sql: string, values?: unknown[]) =>
    (await db.query<{ n: number }>(sql, values))[0].n;

  /** Opens `n` pairs of accounts: `from` with START_BALANCE, `to` with 0. */
  const openAccountPairs = async (n: number) => {
    const insert = (balance: number) =>
      db.query<{ id: string }>(
        'INSERT INTO accounts (balance) SELECT $1::int FROM generate_series(1, $2::int) RETURNING id',
        [balance, n],
      );
    const from = await insert(START_BALANCE);
    const to = await insert(0);
    return from.map((row, index) => ({ from: row.id, to: to[index].id }));
  };

  const balancesOf = async (ids: string[]) =>
    new Map(
      (
        await db.query<{ id: string; balance: number }>(
          'SELECT id, balance FROM accounts WHERE id = ANY($1::uuid[])',
          [ids],
        )
      ).map((row) => [row.id, row.balance]),
    );

  it(
    'runs a payment once when hundreds of duplicates hit three processes at once',
    async () => {
      const key = `one-key-payment-${run}`;
      const clientId = 'client-one-key';
      const body = { amount: 1500, currency: 'EUR', reference: key };
      const stats = new LoadStats();
      const started = Date.now();
      const results = await runBounded(ONE_KEY_REQUESTS, ONE_KEY_CONCURRENCY, async (n) => {
        const result = await pay(n, key, clientId, body);
        stats.record('payment', result);
        return result;
      });
      const answers = classifyAnswers(results);
      const summary = stats.summary();
      report.oneKeyPayment = {
        requests: results.length,
        durationMs: Date.now() - started,
        histogram: summary.histogram,
        replayed: summary.replayed,
        fiveXxByCause: summary.fiveXxByCause,
        latencyMs: summary.latencyMs,
        executions: await count(
          'SELECT count(*)::int AS n FROM payment_attempts WHERE idempotency_key = $1',
          [key],
        ),
      };

      // From the database: one execution, finished, and one payment.
      const attempts = (await allAttempts(db)).filter((row) => row.idempotency_key === key);
      expect(attempts).toHaveLength(1);
      expect(attempts[0].finished_at).not.toBeNull();
      expect(
        await count('SELECT count(*)::int AS n FROM payments WHERE reference = $1', [key]),
      ).toBe(1);
      expect(
        await db.query('SELECT state, response_status FROM idempotency_records WHERE key = $1', [
          key,
        ]),
      ).toEqual([{ state: 'completed', response_status: 201 }]);

      // What the clients saw: the execution's answer once, then only 409s and exact replays.
      expect(answers.others).toEqual([]);
      expect(answers.executed).toHaveLength(1);
      const [execution] = answers.executed;
      expect(execution.status).toBe(201);
      expect(JSON.parse(execution.text)).toMatchObject({ ...body, status: 'succeeded' });
      expect(replayMismatches(execution, answers.replays)).toEqual([]);
      expect(answers.executed.length + answers.replays.length + answers.conflicts.length).toBe(
        ONE_KEY_REQUESTS,
      );
      // Duplicates did overlap the execution (else this proved nothing about concurrency).
      expect(answers.conflicts.length).toBeGreaterThan(0);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'runs a transfer once when hundreds of waiting duplicates hit three processes at once',
    async () => {
      const key = `one-key-transfer-${run}`;
      const clientId = 'client-one-key';
      const [accounts] = await openAccountPairs(1);
      const body = { from: accounts.from, to: accounts.to, amount: TRANSFER_AMOUNT };
      const stats = new LoadStats();
      const started = Date.now();
      const results = await runBounded(ONE_KEY_REQUESTS, ONE_KEY_CONCURRENCY, async (n) => {
        const result = await transfer(n, key, clientId, body);
        stats.record('transfer', result);
        return result;
      });
      const answers = classifyAnswers(results);
      const summary = stats.summary();
      const transfers = await count(
        'SELECT count(*)::int AS n FROM transfers WHERE from_account = $1',
        [accounts.from],
      );
      report.oneKeyTransferWaitMode = {
        requests: results.length,
        waitTimedOut: answers.conflicts.length,
        durationMs: Date.now() - started,
        histogram: summary.histogram,
        replayed: summary.replayed,
        fiveXxByCause: summary.fiveXxByCause,
        latencyMs: summary.latencyMs,
        executions: transfers,
      };

      // From the database: one transfer, the money moved once, the response stored.
      expect(transfers).toBe(1);
      const balances = await balancesOf([accounts.from, accounts.to]);
      expect(balances.get(accounts.from)).toBe(START_BALANCE - TRANSFER_AMOUNT);
      expect(balances.get(accounts.to)).toBe(TRANSFER_AMOUNT);
      expect(
        await db.query('SELECT state, response_status FROM idempotency_records WHERE key = $1', [
          key,
        ]),
      ).toEqual([{ state: 'completed', response_status: 201 }]);

      // In wait mode every duplicate waits for the first and gets its stored response; a 409 is
      // only allowed from one that waited its full waitTimeoutMs (a machine too busy to finish).
      expect(answers.others).toEqual([]);
      expect(earlyWaitConflicts(answers.conflicts)).toEqual([]);
      expect(answers.executed).toHaveLength(1);
      expect(answers.executed[0].status).toBe(201);
      expect(replayMismatches(answers.executed[0], answers.replays)).toEqual([]);
      expect(answers.replays).toHaveLength(ONE_KEY_REQUESTS - 1 - answers.conflicts.length);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'runs each of many keys once under many duplicates each, across three processes',
    async () => {
      // Every key string is used by two clients: scoped keys, so these are two keys.
      interface PlannedKey {
        id: string;
        clientId: string;
        key: string;
        route: 'payment' | 'transfer';
        body: Record<string, unknown>;
        accounts?: { from: string; to: string };
      }
      const transferCount = Math.floor(KEYS / 2);
      const pairs = await openAccountPairs(transferCount);
      const planned: PlannedKey[] = Array.from({ length: KEYS }, (_, index) => {
        const clientId = `client-${index % 2}`;
        const key = `many-${run}-${Math.floor(index / 2)}`;
        const id = scopedKey(clientId, key);
        if (index < transferCount) {
          const accounts = pairs[index];
          return {
            id,
            clientId,
            key,
            route: 'transfer',
            body: { ...accounts, amount: TRANSFER_AMOUNT },
            accounts,
          };
        }
        return {
          id,
          clientId,
          key,
          route: 'payment',
          body: { amount: 100 + index, currency: 'EUR', reference: `${key}-${clientId}` },
        };
      });
      const requests = shuffled(planned.flatMap((entry) => Array(DUPLICATES).fill(entry)));
      const stats = new LoadStats();
      const byKey = new Map<string, HttpResult[]>(planned.map((entry) => [entry.id, []]));
      const started = Date.now();
      await runBounded(requests.length, MANY_KEYS_CONCURRENCY, async (n) => {
        const entry: PlannedKey = requests[n];
        const send = entry.route === 'payment' ? pay : transfer;
        const result = await send(n, entry.key, entry.clientId, entry.body);
        stats.record(entry.route, result);
        byKey.get(entry.id)?.push(result);
      });
      const durationMs = Date.now() - started;

      const payments = planned.filter((entry) => entry.route === 'payment');
      const attempts = await allAttempts(db);
      const perKey = await attemptsPerKey(db);
      const manyAttempts = attempts.filter((row) => row.idempotency_key?.startsWith(`many-${run}`));
      const transfersMade = await count(
        'SELECT count(*)::int AS n FROM transfers WHERE from_account = ANY($1::uuid[])',
        [pairs.map((pair) => pair.from)],
      );
      report.manyKeys = {
        keys: KEYS,
        duplicatesPerKey: DUPLICATES,
        requests: requests.length,
        durationMs,
        executions: { payments: manyAttempts.length, transfers: transfersMade },
        duplicateExecutions:
          manyAttempts.length - payments.length + (transfersMade - transferCount),
        executionsByProcess: Object.fromEntries(
          apps.map((app) => [app.pid, manyAttempts.filter((row) => row.pid === app.pid).length]),
        ),
        ...Object.fromEntries(
          Object.entries(stats.summaries()).map(([label, summary]) => [label, summary]),
        ),
      };

      // From the database: executions == distinct keys, on both routes.
      expect(manyAttempts).toHaveLength(payments.length);
      for (const entry of payments) {
        expect([entry.id, perKey.get(entry.id)]).toEqual([entry.id, 1]);
      }
      expect(manyAttempts.filter((row) => row.finished_at === null)).toEqual([]);
      expect(
        await count('SELECT count(*)::int AS n FROM payments WHERE reference LIKE $1', [
          `many-${run}-%`,
        ]),
      ).toBe(payments.length);
      expect(transfersMade).toBe(transferCount);
      const balances = await balancesOf(pairs.flatMap((pair) => [pair.from, pair.to]));
      for (const pair of pairs) {
        expect([balances.get(pair.from), balances.get(pair.to)]).toEqual([
          START_BALANCE - TRANSFER_AMOUNT,
          TRANSFER_AMOUNT,
        ]);
      }
      const records = await db.query<{ state: string; response_status: number; n: number }>(
        `SELECT state, response_status, count(*)::int AS n FROM idempotency_records
          WHERE key LIKE $1 GROUP BY state, response_status`,
        [`many-${run}-%`],
      );
      expect(records).toEqual([{ state: 'completed', response_status: 201, n: KEYS }]);

      // What the clients saw, per key: one execution's answer; the rest 409s or exact replays.
      for (const entry of planned) {
        const answers = classifyAnswers(byKey.get(entry.id) ?? []);
        expect([entry.id, answers.others]).toEqual([entry.id, []]);
        expect([entry.id, answers.executed.map((result) => result.status)]).toEqual([
          entry.id,
          [201],
        ]);
        expect([entry.id, replayMismatches(answers.executed[0], answers.replays)]).toEqual([
          entry.id,
          [],
        ]);
        if (entry.route === 'transfer') {
          // Wait mode: duplicates replay; they are not refused before the wait timed out.
          expect([entry.id, earlyWaitConflicts(answers.conflicts)]).toEqual([entry.id, []]);
        }
      }
    },
    TEST_TIMEOUT_MS,
  );
});

import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SampleAppProcess } from '../utils/sample-app-process';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';
import { waitFor } from '../utils/wait-for';
import { byProfile } from './profile';
import { classifyAnswers, earlyWaitConflicts, replayMismatches } from './support/load-answers';
import { type HttpResult, LoadClient } from './support/load-driver';
import { writeReport } from './support/load-report';
import { LoadStats } from './support/load-stats';
import { allAttempts, databaseNow, overlappingAttempts } from './support/processes-attempts';
import { type AppSpec, ProcessCluster } from './support/processes-cluster';

/**
 * Scenario 2: a process is SIGKILLed while its handlers are in flight, and clients keep retrying
 * on the surviving processes. Lease mode must hold every key until its lease ends and then run it
 * exactly once, never two executions of one key at a time; transactional mode must leave nothing
 * of the killed requests and run each retry exactly once, at once.
 */

/** The doomed process sleeps this long inside its handlers: it is killed long before. */
const HANGING_LATENCY_MS = 120_000;
/** Handler latency of the survivors. */
const SURVIVOR_LATENCY_MS = 100;
/** Lease of the lease-mode claims: long enough that retries surely land inside it. */
const LEASE_MS = byProfile(6_000, 10_000);
/**
 * Lease of the transactional scenario's processes: far longer than anything that test waits for,
 * so a recovery that relied on a lease could not meet RECOVERY_WITHIN_MS.
 */
const TRANSACTIONAL_LEASE_MS = 300_000;
/** Keys in flight in the doomed process when it is killed. */
const LEASE_KEYS = byProfile(12, 40);
/** At most the doomed process's pool (20): each transactional request holds a connection. */
const TRANSACTIONAL_KEYS = byProfile(8, 16);
/** Clients retrying each key at once, on the survivors. */
const RETRIERS_PER_KEY = byProfile(2, 4);
/** Pause between two retries of one retrier (plus jitter). */
const RETRY_PAUSE_MS = 200;
/** Transactional keys must all be done within this of the kill (the default wait is 10 s). */
const RECOVERY_WITHIN_MS = 20_000;
const REQUEST_TIMEOUT_MS = 30_000;
const TEST_TIMEOUT_MS = byProfile(180_000, 400_000);
const START_BALANCE = 1_000;
const TRANSFER_AMOUNT = 100;

describe('reliability: a process killed mid-request', () => {
  let db: TestDatabase;
  let cluster: ProcessCluster;
  let survivors: SampleAppProcess[] = [];
  const client = new LoadClient();
  const report: Record<string, unknown> = {};
  const run = randomUUID().slice(0, 8);

  const survivorSpecs: AppSpec[] = (['express', 'fastify'] as const).map((adapter) => ({
    adapter,
    paymentLatencyMs: SURVIVOR_LATENCY_MS,
    lockTimeoutMs: LEASE_MS,
  }));

  beforeAll(async () => {
    db = await createTestDatabase();
    cluster = new ProcessCluster(db);
    survivors = await cluster.startAll(survivorSpecs);
  }, TEST_TIMEOUT_MS);

  afterAll(async () => {
    report.resentOnStaleSocket = client.resentOnStaleSocket;
    client.close();
    await cluster?.killAll();
    await db?.drop();
    writeReport('killed-mid-request', report);
  });

  let sent = 0;
  /** Retries go to the survivors in turn. */
  const survivorFor = () => survivors[sent++ % survivors.length];

  const post = (
    app: SampleAppProcess,
    path: string,
    key: string,
    body: unknown,
    timeoutMs = REQUEST_TIMEOUT_MS,
  ) =>
    client.send({
      baseUrl: app.url,
      method: 'POST',
      path,
      headers: { 'idempotency-key': key },
      body,
      timeoutMs,
    });

  /**
   * Retries `key` on the survivors until an answer carries the execution's result or a replay of
   * it, then sends one more to see the replay. Every answer is kept for the assertions.
   */
  const retryUntilDone = async (
    path: string,
    key: string,
    body: unknown,
    deadline: number,
    stats: LoadStats,
    results: HttpResult[],
  ) => {
    while (Date.now() < deadline) {
      const result = await post(survivorFor(), path, key, body);
      stats.record('retry', result);
      results.push(result);
      if (result.status === 201) {
        const replay = await post(survivorFor(), path, key, body);
        stats.record('retry', replay);
        results.push(replay);
        return;
      }
      await sleep(RETRY_PAUSE_MS / 2 + Math.random() * RETRY_PAUSE_MS);
    }
  };

  /** Kills `app` and returns the database's clock once the process is known to be gone. */
  const kill = async (app: SampleAppProcess) => {
    expect(await app.kill('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });
    return databaseNow(db);
  };

  it(
    'lease mode: holds each key of a killed process until its lease ends, then runs it once',
    async () => {
      const doomed = await cluster.start({
        adapter: 'express',
        paymentLatencyMs: HANGING_LATENCY_MS,
        lockTimeoutMs: LEASE_MS,
      });
      const keys = Array.from({ length: LEASE_KEYS }, (_, index) => `lease-${run}-${index}`);
      const bodyOf = (key: string) => ({ amount: 700, currency: 'EUR', reference: key });
      const stats = new LoadStats();
      // Unbounded by our side: only the kill ends them.
      const lost = keys.map((key) =>
        post(doomed, '/payments', key, bodyOf(key), HANGING_LATENCY_MS * 2),
      );

      // Every handler has started (its attempt row exists) and holds its key: in flight.
      await waitFor(
        async () =>
          (await allAttempts(db)).filter((row) => row.pid === doomed.pid).length === keys.length,
        60_000,
      );
      const leases = new Map(
        (
          await db.query<{ key: string; state: string; locked_until: Date }>(
            'SELECT key, state, locked_until FROM idempotency_records WHERE key = ANY($1)',
            [keys],
          )
        ).map((row) => [row.key, row]),
      );
      expect([...leases.values()].map((row) => row.state)).toEqual(keys.map(() => 'in_flight'));

      // Clients retry on the survivors from now on, before and after the crash.
      const deadline = Date.now() + LEASE_MS + 90_000;
      const byKey = new Map(keys.map((key) => [key, [] as HttpResult[]]));
      const retrying = Promise.all(
        keys.flatMap((key) =>
          Array.from({ length: RETRIERS_PER_KEY }, () =>
            retryUntilDone('/payments', key, bodyOf(key), deadline, stats, byKey.get(key) ?? []),
          ),
        ),
      );
      await sleep(500);
      const killedAt = await kill(doomed);
      const lostResults = await Promise.all(lost);
      await retrying;

      const attempts = (await allAttempts(db)).filter((row) =>
        row.idempotency_key?.startsWith(`lease-${run}-`),
      );
      const overlaps = await overlappingAttempts(db, killedAt);
      const takeoverDelays = keys.flatMap((key) => {
        const lease = leases.get(key)?.locked_until;
        const retry = attempts.find((row) => row.idempotency_key === key && row.pid !== doomed.pid);
        return lease && retry ? [retry.started_at.getTime() - lease.getTime()] : [];
      });
      const summary = stats.summary();
      report.lease = {
        keysInFlight: keys.length,
        leaseMs: LEASE_MS,
        requests: summary.requests + lost.length,
        killedRequests: tally(lostResults.map((result) => result.error ?? String(result.status))),
        executions: attempts.length,
        retryExecutions: attempts.filter((row) => row.pid !== doomed.pid).length,
        duplicates: attempts.filter((row) => row.pid !== doomed.pid).length - keys.length,
        overlaps: overlaps.length,
        histogram: summary.histogram,
        replayed: summary.replayed,
        fiveXxByCause: summary.fiveXxByCause,
        retryLatencyMs: summary.latencyMs,
        takeoverAfterLeaseEndMs: {
          min: Math.min(...takeoverDelays),
          max: Math.max(...takeoverDelays),
        },
      };

      // The killed requests got no answer.
      expect(lostResults.map((result) => result.status)).toEqual(keys.map(() => null));
      // From the database, per key: the killed execution (never finished) and exactly one retry,
      // which started only once the killed one's lease had ended.
      expect(overlaps).toEqual([]);
      for (const key of keys) {
        const ofKey = attempts.filter((row) => row.idempotency_key === key);
        const killed = ofKey.filter((row) => row.pid === doomed.pid);
        const retried = ofKey.filter((row) => row.pid !== doomed.pid);
        expect([key, killed.length, killed[0]?.finished_at]).toEqual([key, 1, null]);
        expect(killed[0].started_at.getTime()).toBeLessThan(killedAt.getTime());
        expect([key, retried.length]).toEqual([key, 1]);
        expect(retried[0].finished_at).not.toBeNull();
        const leaseEnd = leases.get(key)?.locked_until.getTime() ?? Infinity;
        expect([key, retried[0].started_at.getTime() >= leaseEnd]).toEqual([key, true]);
      }
      expect(
        (
          await db.query<{ n: number }>(
            'SELECT count(*)::int AS n FROM payments WHERE reference = ANY($1)',
            [keys],
          )
        )[0].n,
      ).toBe(keys.length);
      expect(
        await db.query(
          `SELECT state, response_status, count(*)::int AS n FROM idempotency_records
            WHERE key = ANY($1) GROUP BY state, response_status`,
          [keys],
        ),
      ).toEqual([{ state: 'completed', response_status: 201, n: keys.length }]);

      // What the retrying clients saw, per key: 409s while the lease held, one execution's answer,
      // exact replays of it; nothing else. Some retries were refused (the lease was tested).
      for (const key of keys) {
        const answers = classifyAnswers(byKey.get(key) ?? []);
        expect([key, answers.others]).toEqual([key, []]);
        expect([key, answers.executed.length]).toEqual([key, 1]);
        expect(replayMismatches(answers.executed[0], answers.replays)).toEqual([]);
        expect([key, answers.conflicts.length > 0]).toEqual([key, true]);
      }
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'transactional mode: leaves nothing of the killed requests and runs each retry once, at once',
    async () => {
      const doomed = await cluster.start({
        adapter: 'express',
        paymentLatencyMs: HANGING_LATENCY_MS,
        lockTimeoutMs: TRANSACTIONAL_LEASE_MS,
      });
      const from = await db.query<{ id: string }>(
        'INSERT INTO accounts (balance) SELECT $1::int FROM generate_series(1, $2::int) RETURNING id',
        [START_BALANCE, TRANSACTIONAL_KEYS],
      );
      const to = await db.query<{ id: string }>(
        'INSERT INTO accounts (balance) SELECT 0 FROM generate_series(1, $1::int) RETURNING id',
        [TRANSACTIONAL_KEYS],
      );
      const transfers = from.map((row, index) => ({
        key: `tx-${run}-${index}`,
        body: { from: row.id, to: to[index].id, amount: TRANSFER_AMOUNT },
      }));
      // Half the keys have retries waiting when the process dies; the other half are retried only
      // after the database was seen to hold nothing of them.
      const waitingKeys = transfers.slice(0, Math.ceil(transfers.length / 2));
      const laterKeys = transfers.slice(waitingKeys.length);
      const accountIds = transfers.flatMap((entry) => [entry.body.from, entry.body.to]);
      const balances = async () =>
        new Map(
          (
            await db.query<{ id: string; balance: number }>(
              'SELECT id, balance FROM accounts WHERE id = ANY($1::uuid[])',
              [accountIds],
            )
          ).map((row) => [row.id, row.balance]),
        );
      const transferRows = (ids: string[]) =>
        db.query<{ id: string; from_account: string }>(
          'SELECT id, from_account FROM transfers WHERE from_account = ANY($1::uuid[])',
          [ids],
        );
      /**
       * Backends idle inside a transaction that has debited an account (the row-exclusive lock an
       * UPDATE of `accounts` takes): handlers of the doomed process between debit and credit.
       */
      const midTransfer = () =>
        db.query<{ pid: number }>(
          `SELECT a.pid FROM pg_stat_activity a
            WHERE a.datname = current_database() AND a.state = 'idle in transaction'
              AND EXISTS (SELECT 1 FROM pg_locks l
                           WHERE l.pid = a.pid AND l.granted AND l.locktype = 'relation'
                             AND l.relation = 'accounts'::regclass AND l.mode = 'RowExclusiveLock')`,
        );

      const stats = new LoadStats();
      const lost = transfers.map((entry) =>
        post(doomed, '/transfers', entry.key, entry.body, HANGING_LATENCY_MS * 2),
      );
      let backends: number[] = [];
      await waitFor(
        async () =>
          (backends = (await midTransfer()).map((row) => row.pid)).length === transfers.length,
        60_000,
      );

      const byKey = new Map(transfers.map((entry) => [entry.key, [] as HttpResult[]]));
      const retry = (entries: typeof transfers, deadline: number) =>
        Promise.all(
          entries.flatMap((entry) =>
            Array.from({ length: RETRIERS_PER_KEY }, () =>
              retryUntilDone(
                '/transfers',
                entry.key,
                entry.body,
                deadline,
                stats,
                byKey.get(entry.key) ?? [],
              ),
            ),
          ),
        );
      // These duplicates wait (wait mode) on the key the doomed transaction holds.
      const waiting = retry(waitingKeys, Date.now() + 120_000);
      await sleep(500);
      const killedAtMs = Date.now();
      await kill(doomed);
      const lostResults = await Promise.all(lost);

      // PostgreSQL ends the dead process's backends (rolling their transactions back) once it
      // reads the closed sockets; only then is the absence of rows meaningful.
      await waitFor(
        async () =>
          (await db.query('SELECT 1 FROM pg_stat_activity WHERE pid = ANY($1::int[])', [backends]))
            .length === 0,
        RECOVERY_WITHIN_MS,
      );
      const laterFrom = laterKeys.map((entry) => entry.body.from);
      const before = await balances();
      const leftBehind = {
        records: await db.query('SELECT key FROM idempotency_records WHERE key = ANY($1)', [
          laterKeys.map((entry) => entry.key),
        ]),
        transfers: await transferRows(laterFrom),
        debited: laterKeys.filter((entry) => before.get(entry.body.from) !== START_BALANCE),
        credited: laterKeys.filter((entry) => before.get(entry.body.to) !== 0),
      };
      expect(leftBehind).toEqual({ records: [], transfers: [], debited: [], credited: [] });

      await Promise.all([waiting, retry(laterKeys, Date.now() + 120_000)]);
      const recoveredMs = Date.now() - killedAtMs;

      const after = await balances();
      const rows = await transferRows(transfers.map((entry) => entry.body.from));
      const summary = stats.summary();
      report.transactional = {
        keysInFlight: transfers.length,
        requests: summary.requests + lost.length,
        killedRequests: tally(lostResults.map((result) => result.error ?? String(result.status))),
        executions: rows.length,
        duplicates: rows.length - transfers.length,
        histogram: summary.histogram,
        replayed: summary.replayed,
        fiveXxByCause: summary.fiveXxByCause,
        retryLatencyMs: summary.latencyMs,
        allRecoveredWithinMs: recoveredMs,
      };

      expect(lostResults.map((result) => result.status)).toEqual(transfers.map(() => null));
      expect(recoveredMs).toBeLessThan(RECOVERY_WITHIN_MS);
      // From the database: each transfer exactly once, the money moved exactly once.
      for (const entry of transfers) {
        const ofKey = rows.filter((row) => row.from_account === entry.body.from);
        expect([entry.key, ofKey.length]).toEqual([entry.key, 1]);
        expect([entry.key, after.get(entry.body.from), after.get(entry.body.to)]).toEqual([
          entry.key,
          START_BALANCE - TRANSFER_AMOUNT,
          TRANSFER_AMOUNT,
        ]);
      }
      expect(
        await db.query(
          `SELECT state, response_status, count(*)::int AS n FROM idempotency_records
            WHERE key = ANY($1) GROUP BY state, response_status`,
          [transfers.map((entry) => entry.key)],
        ),
      ).toEqual([{ state: 'completed', response_status: 201, n: transfers.length }]);

      // The clients: in wait mode no refusal before the wait timed out, one execution's answer
      // per key, exact replays.
      for (const entry of transfers) {
        const answers = classifyAnswers(byKey.get(entry.key) ?? []);
        expect([entry.key, answers.others, earlyWaitConflicts(answers.conflicts)]).toEqual([
          entry.key,
          [],
          [],
        ]);
        expect([entry.key, answers.executed.length]).toEqual([entry.key, 1]);
        const [execution] = answers.executed;
        expect(JSON.parse(execution.text)).toEqual({
          id: rows.find((row) => row.from_account === entry.body.from)?.id,
          ...entry.body,
        });
        expect(replayMismatches(execution, answers.replays)).toEqual([]);
      }
    },
    TEST_TIMEOUT_MS,
  );
});

/** How often each value occurs: `['a', 'a', 'b']` -> `{ a: 2, b: 1 }`. */
function tally(values: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const value of values) {
    counts[value] = (counts[value] ?? 0) + 1;
  }
  return counts;
}

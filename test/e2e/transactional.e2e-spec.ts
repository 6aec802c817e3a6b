import type { DynamicModule, LoggerService } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Response } from 'supertest';
import type { AccountView } from '../../sample-app/accounts/account.entity';
import { AppModule } from '../../sample-app/app.module';
import { readConfig } from '../../sample-app/config';
import type { TransferView } from '../../sample-app/transfers/transfer.entity';
import { LedgerFixtureModule } from './fixtures/ledger-app.module';
import { CLIENT_ERROR_STATUS, handlerRuns } from './fixtures/ledger.controller';
import { ADAPTERS, type AdapterName, type TestApp, createTestApp } from '../utils/test-app';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';
import { waitFor } from '../utils/wait-for';

const PROBLEM = /^application\/problem\+json/;
const JSON_TYPE = /^application\/json/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const IN_FLIGHT = 'urn:nestjs-idempotency:problem:key-in-flight';

/** Every request gives up after this, so a deadlock fails its test instead of hanging Jest. */
const REQUEST_TIMEOUT_MS = 30_000;

/** `waitTimeoutMs` of the fixture's `bounded-wait` route. */
const WAIT_BOUND_MS = 1000;
/**
 * A waiting duplicate gives up as soon as its next pause (at most 200 ms, jittered) would cross
 * the bound, so its 409 may come up to that much before the bound.
 */
const LONGEST_POLL_PAUSE_MS = 200;

interface Harness {
  db: TestDatabase;
  app: TestApp;
}

/** Warnings an app logged, with their context (the Logger's name). */
class WarningCollector implements LoggerService {
  readonly warnings: { message: string; context: unknown }[] = [];

  log(): void {
    // Only warnings are asserted on.
  }

  error(): void {
    // Only warnings are asserted on.
  }

  warn(message: unknown, ...params: unknown[]): void {
    this.warnings.push({ message: String(message), context: params.at(-1) });
  }

  from(context: string): string[] {
    return this.warnings.filter((w) => w.context === context).map((w) => w.message);
  }
}

/**
 * A database of its own and an app on it, for one describe block. `logger` replaces the silence
 * of createTestApp, for tests that assert on what the library logs.
 */
function useApp(
  adapter: AdapterName,
  module: (databaseUrl: string) => DynamicModule,
  logger?: LoggerService,
): () => Harness {
  let db: TestDatabase | undefined;
  let app: TestApp | undefined;
  beforeAll(async () => {
    db = await createTestDatabase();
    app = await createTestApp(adapter, module(db.url));
    if (logger) {
      app.app.useLogger(logger);
    }
  });
  afterAll(async () => {
    await app?.close();
    await db?.drop();
  });
  return () => {
    if (!db || !app) {
      throw new Error('the app did not start');
    }
    return { db, app };
  };
}

async function count(db: TestDatabase, sql: string, values: unknown[] = []): Promise<number> {
  return Number((await db.query<{ n: string }>(sql, values))[0].n);
}

/** Ids of the executions rows of a key: committed runs only. */
async function executionIds(db: TestDatabase, key: string): Promise<number[]> {
  const rows = await db.query<{ id: number }>(
    'SELECT id FROM executions WHERE idem_key = $1 ORDER BY id',
    [key],
  );
  return rows.map((row) => row.id);
}

async function recordOf(db: TestDatabase, key: string) {
  return db.query<{ state: string; status: number | null }>(
    'SELECT state, response_status AS status FROM idempotency_records WHERE key = $1',
    [key],
  );
}

/**
 * Whether an open transaction holds the key's advisory lock (anonymous scope): from outside, the
 * only sign that a transactional request has claimed its key, whose rows are invisible until it
 * commits. A bigint lock shows its high half in `classid` and its low half in `objid`.
 */
async function keyLocked(db: TestDatabase, key: string): Promise<boolean> {
  const held = await count(
    db,
    `SELECT count(*) AS n FROM pg_locks
      WHERE locktype = 'advisory' AND granted
        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND ((classid::bigint << 32) | objid::bigint) = hashtextextended(E'\\n' || $1, 0)`,
    [key],
  );
  return held === 1;
}

function post(
  app: TestApp,
  path: string,
  key: string,
  headers: Record<string, string> = {},
): Promise<Response> {
  return app
    .http()
    .post(path)
    .set('Idempotency-Key', key)
    .set(headers)
    .timeout(REQUEST_TIMEOUT_MS)
    .send({})
    .then((response) => response);
}

/** Sends a request and measures how long its answer took. */
async function timed(send: () => Promise<Response>): Promise<{ response: Response; ms: number }> {
  const started = performance.now();
  const response = await send();
  return { response, ms: performance.now() - started };
}

/** Starts a request and tells, synchronously, whether it has been answered yet. */
function inBackground(send: () => Promise<Response>) {
  const state = { settled: false };
  const answer = send().finally(() => (state.settled = true));
  return { answer, settled: () => state.settled };
}

function expectReplayOf(retry: Response, first: Response): void {
  expect(retry.status).toBe(first.status);
  expect(retry.headers['idempotent-replayed']).toBe('true');
  expect(retry.text).toBe(first.text);
  expect(retry.headers['content-type']).toBe(first.headers['content-type']);
}

function expectBusyConflict(response: Response): void {
  expect(response.status).toBe(409);
  expect(response.headers['content-type']).toMatch(PROBLEM);
  expect(response.headers['retry-after']).toBe('1');
  expect((response.body as { type: string }).type).toBe(IN_FLIGHT);
}

/**
 * Duplicates of one key: each answer is the key's one committed 201 (the same bytes), or a 409
 * for a duplicate that waited past its bound. Exactly one answer is not a replay: the one run.
 */
function expectOneCommittedAnswer(responses: Response[]): Response {
  for (const response of responses) {
    expect([201, 409]).toContain(response.status);
    if (response.status === 409) {
      expect(response.headers['content-type']).toMatch(PROBLEM);
      expect(response.headers['retry-after']).toMatch(/^\d+$/);
    }
  }
  const successes = responses.filter((response) => response.status === 201);
  expect(successes.length).toBeGreaterThanOrEqual(1);
  expect(new Set(successes.map((response) => response.text)).size).toBe(1);
  const fresh = successes.filter((response) => response.headers['idempotent-replayed'] !== 'true');
  expect(fresh).toHaveLength(1);
  return fresh[0];
}

describe.each(ADAPTERS)('transactional mode (%s)', (adapter) => {
  /** Keys are unique per test, so that counts by key see only that test's requests. */
  const newKey = (label: string) => `${label}-${adapter}-${randomUUID()}`;

  describe('sample app: transfers', () => {
    const harness = useApp(adapter, (databaseUrl) =>
      // A payment latency inside the transfer, so that parallel duplicates overlap its transaction.
      AppModule.register({ ...readConfig({}), databaseUrl, paymentLatencyMs: 100 }),
    );

    const openAccount = async (balance: number): Promise<string> => {
      const response = await harness().app.http().post('/accounts').send({ balance });
      expect(response.status).toBe(201);
      return (response.body as AccountView).id;
    };

    const transfer = (key: string | undefined, body: object) => {
      const request = harness().app.http().post('/transfers').timeout(REQUEST_TIMEOUT_MS);
      if (key !== undefined) {
        request.set('Idempotency-Key', key);
      }
      return request.send(body).then((response) => response);
    };

    /** Balances as the API reports them, checked against the table. */
    const balances = async (...ids: string[]): Promise<number[]> => {
      const viaApi: number[] = [];
      for (const id of ids) {
        const response = await harness().app.http().get(`/accounts/${id}`);
        expect(response.status).toBe(200);
        viaApi.push((response.body as AccountView).balance);
      }
      const rows = await harness().db.query<{ id: string; balance: number }>(
        'SELECT id, balance FROM accounts WHERE id = ANY($1::uuid[])',
        [ids],
      );
      expect(ids.map((id) => rows.find((row) => row.id === id)?.balance)).toEqual(viaApi);
      return viaApi;
    };

    const transfersFrom = (id: string) =>
      count(harness().db, 'SELECT count(*) AS n FROM transfers WHERE from_account = $1', [id]);

    it('creates an account (201) and reads it back (200)', async () => {
      const created = await harness().app.http().post('/accounts').send({ balance: 500 });
      expect(created.status).toBe(201);
      expect(created.headers['content-type']).toMatch(JSON_TYPE);
      const account = created.body as AccountView;
      expect(account).toEqual({ id: expect.stringMatching(UUID), balance: 500 });

      const read = await harness().app.http().get(`/accounts/${account.id}`);
      expect(read.status).toBe(200);
      expect(read.headers['content-type']).toMatch(JSON_TYPE);
      expect(read.body).toEqual(account);
      expect(await balances(account.id)).toEqual([500]);
    });

    it.each<[string, object]>([
      ['a negative balance', { balance: -1 }],
      ['a fractional balance', { balance: 1.5 }],
      ['a balance as a string', { balance: '10' }],
      ['no balance', {}],
    ])('rejects an account with %s: 400, and no account', async (_, body) => {
      const before = await count(harness().db, 'SELECT count(*) AS n FROM accounts');
      const response = await harness().app.http().post('/accounts').send(body);
      expect(response.status).toBe(400);
      expect(await count(harness().db, 'SELECT count(*) AS n FROM accounts')).toBe(before);
    });

    it('answers 404 for an unknown account and 400 for an id that is not a uuid', async () => {
      const unknown = await harness().app.http().get(`/accounts/${randomUUID()}`);
      expect(unknown.status).toBe(404);
      expect(unknown.body).toEqual({ error: 'account_not_found' });
      expect((await harness().app.http().get('/accounts/42')).status).toBe(400);
    });

    it('moves the money exactly once under 30 parallel requests with one key', async () => {
      const from = await openAccount(1000);
      const to = await openAccount(0);
      const key = randomUUID();
      const responses = await Promise.all(
        Array.from({ length: 30 }, () => transfer(key, { from, to, amount: 300 })),
      );

      const committed = expectOneCommittedAnswer(responses);
      expect(committed.headers['content-type']).toMatch(JSON_TYPE);
      const view = committed.body as TransferView;
      expect(view).toEqual({ id: expect.stringMatching(UUID), from, to, amount: 300 });
      expect(await balances(from, to)).toEqual([700, 300]);
      const rows = await harness().db.query<{ id: string }>(
        'SELECT id FROM transfers WHERE from_account = $1',
        [from],
      );
      expect(rows).toEqual([{ id: view.id }]);
      expect(await recordOf(harness().db, key)).toEqual([{ state: 'completed', status: 201 }]);
    });

    it('stores insufficient funds (400) and replays it, moving nothing', async () => {
      const from = await openAccount(100);
      const to = await openAccount(0);
      const key = randomUUID();
      const body = { from, to, amount: 101 };
      const first = await transfer(key, body);

      expect(first.status).toBe(400);
      expect(first.headers['content-type']).toMatch(JSON_TYPE);
      expect(first.text).toBe('{"error":"insufficient_funds"}');
      expect(first.headers['idempotent-replayed']).toBeUndefined();
      const retry = await transfer(key, body);
      expectReplayOf(retry, first);
      expect(await balances(from, to)).toEqual([100, 0]);
      expect(await transfersFrom(from)).toBe(0);
    });

    it('requires a key: 400 problem+json, and nothing moves', async () => {
      const from = await openAccount(100);
      const to = await openAccount(0);
      const response = await transfer(undefined, { from, to, amount: 10 });

      expect(response.status).toBe(400);
      expect(response.headers['content-type']).toMatch(PROBLEM);
      expect((response.body as { type: string }).type).toBe(
        'urn:nestjs-idempotency:problem:key-missing',
      );
      expect(await balances(from, to)).toEqual([100, 0]);
      expect(await transfersFrom(from)).toBe(0);
    });

    it.each<[string, (from: string, to: string) => object, RegExp]>([
      ['amount 0', (from, to) => ({ from, to, amount: 0 }), /amount/],
      ['a fractional amount', (from, to) => ({ from, to, amount: 1.5 }), /amount/],
      ['an amount as a string', (from, to) => ({ from, to, amount: '10' }), /amount/],
      ['no amount', (from, to) => ({ from, to }), /amount/],
      ['the same account twice', (from) => ({ from, to: from, amount: 10 }), /different/],
      ['a from that is not a uuid', (_, to) => ({ from: 'acc-1', to, amount: 10 }), /from/],
      ['no to', (from) => ({ from, amount: 10 }), /to must/],
    ])('rejects a transfer with %s: 400, and nothing moves', async (_, build, complaint) => {
      const from = await openAccount(100);
      const to = await openAccount(0);
      const response = await transfer(randomUUID(), build(from, to));

      expect(response.status).toBe(400);
      expect(response.headers['content-type']).toMatch(JSON_TYPE);
      const messages = (response.body as { message: string[] }).message;
      expect(messages.some((message) => complaint.test(message))).toBe(true);
      expect(await balances(from, to)).toEqual([100, 0]);
      expect(await transfersFrom(from)).toBe(0);
    });
  });

  describe('ledger routes', () => {
    const harness = useApp(adapter, (databaseUrl) => LedgerFixtureModule.register({ databaseUrl }));

    it.each([
      ['a plain Error', 'error'],
      ['an HttpException 500', '500'],
    ])(
      'rolls the write and the claim back when the handler throws %s, and the retry runs once',
      async (_, fail) => {
        const { db, app } = harness();
        const key = newKey(`throws-${fail}`);
        const failed = await post(app, '/ledger/entries', key, { 'X-Fail': fail });

        expect(failed.status).toBe(500);
        expect(await executionIds(db, key)).toEqual([]);
        expect(await recordOf(db, key)).toEqual([]);

        // X-Fail is a header, not part of the fingerprint: this is the same request, now healthy.
        const retry = await post(app, '/ledger/entries', key);
        expect(retry.status).toBe(201);
        expect(retry.headers['idempotent-replayed']).toBeUndefined();
        const { execution } = retry.body as { execution: number };
        expect(await executionIds(db, key)).toEqual([execution]);

        expectReplayOf(await post(app, '/ledger/entries', key, { 'X-Fail': fail }), retry);
        expect(await executionIds(db, key)).toEqual([execution]);
        expect(await recordOf(db, key)).toEqual([{ state: 'completed', status: 201 }]);
      },
    );

    it('rolls back and frees the key when the result cannot be serialized: the retry runs', async () => {
      const { db, app } = harness();
      const key = newKey('unserializable');
      const failed = await post(app, '/ledger/entries', key, { 'X-Fail': 'unserializable' });

      expect(failed.status).toBe(500);
      expect(await executionIds(db, key)).toEqual([]);
      expect(await recordOf(db, key)).toEqual([]);
      expect(await keyLocked(db, key)).toBe(false);

      const retry = await post(app, '/ledger/entries', key);
      expect(retry.status).toBe(201);
      const { execution } = retry.body as { execution: number };
      expect(await executionIds(db, key)).toEqual([execution]);
    });

    it('spends a lease key whose result cannot be serialized: its retry gets 410, not a second run', async () => {
      const { db, app } = harness();
      const key = newKey('unserializable-lease');
      const failed = await post(app, '/ledger/lease-wait', key, { 'X-Fail': 'unserializable' });

      expect(failed.status).toBe(500);
      const ran = await executionIds(db, key);
      expect(ran).toHaveLength(1);

      const retry = await post(app, '/ledger/lease-wait', key);
      expect(retry.status).toBe(410);
      expect(retry.headers['content-type']).toMatch(PROBLEM);
      expect(await executionIds(db, key)).toEqual(ran);
    });

    it('runs a waiting duplicate itself when the first one rolls back', async () => {
      const { db, app } = harness();
      const key = newKey('takeover');
      const first = inBackground(() =>
        post(app, '/ledger/entries', key, { 'X-Delay-Ms': '800', 'X-Fail': '500' }),
      );
      await waitFor(() => keyLocked(db, key));

      const duplicate = await post(app, '/ledger/entries', key);
      expect((await first.answer).status).toBe(500);
      expect(duplicate.status).toBe(201);
      expect(duplicate.headers['idempotent-replayed']).toBeUndefined();
      const { execution } = duplicate.body as { execution: number };
      expect(await executionIds(db, key)).toEqual([execution]);
    });

    it('commits the write of a stored client error, and replays the error', async () => {
      const { db, app } = harness();
      const key = newKey('client-error');
      const first = await post(app, '/ledger/client-error', key);

      expect(first.status).toBe(CLIENT_ERROR_STATUS);
      expect(first.headers['content-type']).toMatch(JSON_TYPE);
      const { error, execution } = first.body as { error: string; execution: number };
      expect(error).toBe('declined');
      expect(await executionIds(db, key)).toEqual([execution]);

      expectReplayOf(await post(app, '/ledger/client-error', key), first);
      expect(await executionIds(db, key)).toEqual([execution]);
    });

    it('with rollbackOnClientError, replays the client error but rolls its write back', async () => {
      const { db, app } = harness();
      const key = newKey('client-error-rollback');
      const first = await post(app, '/ledger/client-error-rollback', key);

      expect(first.status).toBe(CLIENT_ERROR_STATUS);
      expect((first.body as { error: string }).error).toBe('declined');
      expect(await executionIds(db, key)).toEqual([]);
      expect(await recordOf(db, key)).toEqual([
        { state: 'completed', status: CLIENT_ERROR_STATUS },
      ]);

      expectReplayOf(await post(app, '/ledger/client-error-rollback', key), first);
      expect(await executionIds(db, key)).toEqual([]);
    });

    it('keeps the key through the rollback: waiting duplicates replay the client error', async () => {
      // The writes are rolled back and the error stored alone; a duplicate waiting meanwhile must
      // get that error, not run the handler itself in between.
      const { db, app } = harness();
      const key = newKey('client-error-rollback-waiters');
      const first = inBackground(() =>
        post(app, '/ledger/client-error-rollback', key, { 'X-Delay-Ms': '300' }),
      );
      await waitFor(() => keyLocked(db, key));
      const duplicates = await Promise.all(
        Array.from({ length: 10 }, () => post(app, '/ledger/client-error-rollback', key)),
      );

      const answer = await first.answer;
      expect(answer.status).toBe(CLIENT_ERROR_STATUS);
      duplicates.forEach((duplicate) => expectReplayOf(duplicate, answer));
      expect(handlerRuns.get(key)).toBe(1);
      expect(await executionIds(db, key)).toEqual([]);
    });

    it('stores the client error of a handler whose statement failed in the transaction', async () => {
      // PostgreSQL cannot commit a transaction after a failed statement. The handler answered a
      // final 4xx; that answer must reach the client and its retries, even though none of the
      // handler's writes can be kept.
      const { db, app } = harness();
      const key = newKey('failed-statement');
      const first = await post(app, '/ledger/failed-statement', key);

      expect(first.status).toBe(422);
      expect((first.body as { error: string }).error).toBe('duplicate');
      expectReplayOf(await post(app, '/ledger/failed-statement', key), first);
      expect(await executionIds(db, key)).toEqual([]);
      expect(await recordOf(db, key)).toEqual([{ state: 'completed', status: 422 }]);
    });

    it("nests a handler's own manager.transaction() in the request's transaction", async () => {
      const { db, app } = harness();
      const failedKey = newKey('nested-fails');
      const failed = await post(app, '/ledger/nested', failedKey, { 'X-Fail': 'error' });
      expect(failed.status).toBe(500);
      // The inner "commit" released a savepoint; the request's rollback took its write back.
      expect(await executionIds(db, failedKey)).toEqual([]);
      expect(await recordOf(db, failedKey)).toEqual([]);

      const key = newKey('nested');
      const first = await post(app, '/ledger/nested', key);
      expect(first.status).toBe(201);
      const { execution } = first.body as { execution: number };
      expect(await executionIds(db, key)).toEqual([execution]);
      expectReplayOf(await post(app, '/ledger/nested', key), first);
      expect(await recordOf(db, key)).toEqual([{ state: 'completed', status: 201 }]);
    });

    it('commits nothing when the handler deleted its own claim (503), and the retry runs once', async () => {
      const { db, app } = harness();
      const key = newKey('vanish');
      const first = await post(app, '/ledger/vanish', key);

      expect(first.status).toBe(503);
      expect(first.headers['content-type']).toMatch(PROBLEM);
      expect(await executionIds(db, key)).toEqual([]);
      expect(await recordOf(db, key)).toEqual([]);

      const retry = await post(app, '/ledger/entries', key);
      expect(retry.status).toBe(201);
      const { execution } = retry.body as { execution: number };
      expect(await executionIds(db, key)).toEqual([execution]);
    });

    it('gives @IdempotentEntityManager() the transaction: a failure leaves no write', async () => {
      const { db, app } = harness();
      const key = newKey('manager');
      const failed = await post(app, '/ledger/manager', key, { 'X-Fail': 'error' });
      expect(failed.status).toBe(500);
      expect(await executionIds(db, key)).toEqual([]);
      expect(await recordOf(db, key)).toEqual([]);

      const retry = await post(app, '/ledger/manager', key);
      expect(retry.status).toBe(201);
      const { execution } = retry.body as { execution: number };
      expect(await executionIds(db, key)).toEqual([execution]);
    });

    it('answers a duplicate 409 after waitTimeoutMs while the first still runs', async () => {
      const { db, app } = harness();
      const key = newKey('bounded-wait');
      const first = inBackground(() =>
        post(app, '/ledger/bounded-wait', key, { 'X-Delay-Ms': '3000' }),
      );
      await waitFor(() => keyLocked(db, key));

      const { response, ms } = await timed(() => post(app, '/ledger/bounded-wait', key));
      expectBusyConflict(response);
      expect(first.settled()).toBe(false);
      expect(ms).toBeGreaterThanOrEqual(WAIT_BOUND_MS - LONGEST_POLL_PAUSE_MS - 10);
      expect(ms).toBeLessThan(3000);

      const original = await first.answer;
      expect(original.status).toBe(201);
      expectReplayOf(await post(app, '/ledger/bounded-wait', key), original);
      expect(await executionIds(db, key)).toHaveLength(1);
    });

    it("answers a duplicate 409 at once with concurrency: 'reject'", async () => {
      const { db, app } = harness();
      const key = newKey('reject');
      const first = inBackground(() => post(app, '/ledger/reject', key, { 'X-Delay-Ms': '2000' }));
      await waitFor(() => keyLocked(db, key));

      const { response, ms } = await timed(() => post(app, '/ledger/reject', key));
      expectBusyConflict(response);
      expect(ms).toBeLessThan(900);
      expect(first.settled()).toBe(false);

      expect((await first.answer).status).toBe(201);
      expect(await executionIds(db, key)).toHaveLength(1);
    });

    it("lease mode with concurrency: 'wait': a duplicate gets the first one's answer", async () => {
      const { db, app } = harness();
      const key = newKey('lease-wait');
      const first = inBackground(() =>
        post(app, '/ledger/lease-wait', key, { 'X-Delay-Ms': '800' }),
      );
      // Lease mode writes on its own connection: the run is visible as soon as it starts.
      await waitFor(async () => (await executionIds(db, key)).length === 1);

      const duplicate = await post(app, '/ledger/lease-wait', key);
      const original = await first.answer;
      expect(original.status).toBe(201);
      expect(original.headers['idempotent-replayed']).toBeUndefined();
      expectReplayOf(duplicate, original);
      expect(await executionIds(db, key)).toHaveLength(1);
    });

    it("lease mode with concurrency: 'wait': a duplicate runs itself when the first fails", async () => {
      const { db, app } = harness();
      const key = newKey('lease-wait-fail');
      const first = inBackground(() =>
        post(app, '/ledger/lease-wait', key, { 'X-Delay-Ms': '800', 'X-Fail': '500' }),
      );
      await waitFor(async () => (await executionIds(db, key)).length === 1);

      const duplicate = await post(app, '/ledger/lease-wait', key);
      const original = await first.answer;
      expect(original.status).toBe(500);
      expect(duplicate.status).toBe(201);
      expect(duplicate.headers['idempotent-replayed']).toBeUndefined();
      const failedRun = (original.body as { execution: number }).execution;
      const ownRun = (duplicate.body as { execution: number }).execution;
      expect(await executionIds(db, key)).toEqual([failedRun, ownRun]);
      expect(await recordOf(db, key)).toEqual([{ state: 'completed', status: 201 }]);
    });
  });

  describe('more requests than pooled connections (pool of 3)', () => {
    const harness = useApp(adapter, (databaseUrl) =>
      LedgerFixtureModule.register({ databaseUrl, poolSize: 3 }),
    );

    it('answers 25 duplicates of one key holding its transaction 300 ms, running it once', async () => {
      const { db, app } = harness();
      const key = newKey('pool-one-key');
      const started = performance.now();
      const responses = await Promise.all(
        Array.from({ length: 25 }, () =>
          post(app, '/ledger/entries', key, { 'X-Delay-Ms': '300' }),
        ),
      );
      const ms = performance.now() - started;

      const committed = expectOneCommittedAnswer(responses);
      const { execution } = committed.body as { execution: number };
      expect(await executionIds(db, key)).toEqual([execution]);
      // Waiting duplicates hold no connection: all are answered well before the 10 s wait bound.
      expect(ms).toBeLessThan(10_000);
    });

    it('runs each of 12 keys once under 3 duplicates each', async () => {
      const { db, app } = harness();
      const keys = Array.from({ length: 12 }, (_, i) => newKey(`pool-many-${i}`));
      const responses = await Promise.all(
        keys.map((key) =>
          Promise.all(
            Array.from({ length: 3 }, () =>
              post(app, '/ledger/entries', key, { 'X-Delay-Ms': '300' }),
            ),
          ),
        ),
      );

      responses.forEach((duplicates) => expectOneCommittedAnswer(duplicates));
      const rows = await db.query<{ key: string; n: string }>(
        'SELECT idem_key AS key, count(*) AS n FROM executions WHERE idem_key = ANY($1) GROUP BY 1',
        [keys],
      );
      expect(rows).toHaveLength(keys.length);
      expect(rows.every((row) => Number(row.n) === 1)).toBe(true);
    });

    it('gives connections back clean after replays, which end their transaction unawaited', async () => {
      const { db, app } = harness();
      const key = newKey('pool-replays');
      const first = await post(app, '/ledger/entries', key);
      expect(first.status).toBe(201);

      // Every replay opens a transaction for its claim and queues its ROLLBACK behind it.
      const replays = await Promise.all(
        Array.from({ length: 30 }, () => post(app, '/ledger/entries', key)),
      );
      replays.forEach((replay) => expectReplayOf(replay, first));

      // None of the 3 connections stays in a transaction...
      const openTransactions = async () =>
        (
          await db.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_stat_activity
              WHERE datname = current_database() AND state LIKE 'idle in transaction%'`,
          )
        )[0].n;
      await waitFor(async () => (await openTransactions()) === 0, 2_000);
      // ... so autocommitted writes on them (lease mode, through the same pool) commit at once.
      const after = Array.from({ length: 6 }, (_, i) => newKey(`pool-after-replays-${i}`));
      const answers = await Promise.all(after.map((next) => post(app, '/ledger/lease-wait', next)));
      expect(answers.map((answer) => answer.status)).toEqual(after.map(() => 201));
      for (const next of after) {
        expect(await executionIds(db, next)).toHaveLength(1);
      }
    });
  });

  describe('a handler that writes outside its transaction', () => {
    const logs = new WarningCollector();
    const harness = useApp(
      adapter,
      (databaseUrl) =>
        LedgerFixtureModule.register({
          databaseUrl,
          idempotency: { warnOnQueriesOutsideTransaction: true },
        }),
      logs,
    );
    const warnings = () => logs.from('IdempotencyTransaction');

    it('is warned about once, by route name; a handler using the transaction is not', async () => {
      const { app } = harness();
      for (const label of ['inside-1', 'inside-2']) {
        expect((await post(app, '/ledger/entries', newKey(label))).status).toBe(201);
      }
      expect(warnings()).toEqual([]);

      for (const label of ['outside-1', 'outside-2']) {
        expect((await post(app, '/ledger/outside', newKey(label))).status).toBe(201);
      }
      expect(warnings()).toHaveLength(1);
      expect(warnings()[0]).toContain('LedgerController.outside');
      expect(warnings()[0]).not.toContain('LedgerController.entries');
    });

    it('keeps that write when the handler fails: what the warning is about', async () => {
      const { db, app } = harness();
      const key = newKey('outside-fails');
      const failed = await post(app, '/ledger/outside', key, { 'X-Fail': '500' });

      expect(failed.status).toBe(500);
      expect(await executionIds(db, key)).toHaveLength(1);
      expect(await recordOf(db, key)).toEqual([]);
    });
  });
});

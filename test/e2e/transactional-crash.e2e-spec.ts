import request from 'supertest';
import type { AccountView } from '../../sample-app/accounts/account.entity';
import type { TransferView } from '../../sample-app/transfers/transfer.entity';
import type { SampleAppProcess } from '../utils/sample-app-process';
import { useSampleAppCluster } from '../utils/sample-app-cluster';
import { ADAPTERS } from '../utils/test-app';
import { waitFor } from '../utils/wait-for';

/** How long the doomed app sleeps between debit and credit: it is killed long before. */
const HANGING_LATENCY_MS = 30_000;
/**
 * Lease of a claim. Far longer than anything this test waits for, so that a recovery relying on a
 * lease (as lease mode does) could not meet RETRY_WITHIN_MS below.
 */
const LEASE_MS = 120_000;
/**
 * The retry on the surviving app must succeed within this of the kill. Below the 10 s a duplicate
 * waits for a busy key by default, so a key still held (or a leftover claim row) fails the test.
 */
const RETRY_WITHIN_MS = 5_000;
const AMOUNT = 100;
/** Bound on each request expected to answer, so a hung request fails clearly, not by timeout. */
const REQUEST_TIMEOUT_MS = 20_000;
/** Two app boots (migrations included) on a busy 2-core machine, and the crash itself. */
const TEST_TIMEOUT_MS = 120_000;

describe.each(ADAPTERS)('crash of a real process mid-transaction (%s)', (adapter) => {
  const cluster = useSampleAppCluster(adapter, { lockTimeoutMs: LEASE_MS });
  const startApp = (paymentLatencyMs: number) => cluster.start({ paymentLatencyMs });
  const openAccount = async (app: SampleAppProcess, balance: number): Promise<AccountView> => {
    const response = await request(app.url)
      .post('/accounts')
      .send({ balance })
      .timeout(REQUEST_TIMEOUT_MS);
    expect(response.status).toBe(201);
    return response.body as AccountView;
  };
  const transfer = (app: SampleAppProcess, key: string, from: AccountView, to: AccountView) =>
    request(app.url)
      .post('/transfers')
      .set('Idempotency-Key', key)
      .send({ from: from.id, to: to.id, amount: AMOUNT });
  /** A transfer on the survivor, which must answer (the doomed one must not: it is unbounded). */
  const survivorTransfer = (
    app: SampleAppProcess,
    key: string,
    from: AccountView,
    to: AccountView,
  ) => transfer(app, key, from, to).timeout(REQUEST_TIMEOUT_MS);

  const balances = async (from: AccountView, to: AccountView): Promise<[number, number]> => {
    const rows = await cluster
      .db()
      .query<{ id: string; balance: number }>(
        'SELECT id, balance FROM accounts WHERE id = ANY($1::uuid[])',
        [[from.id, to.id]],
      );
    const of = (id: string) => rows.find((row) => row.id === id)?.balance ?? NaN;
    return [of(from.id), of(to.id)];
  };
  const transferRows = () =>
    cluster
      .db()
      .query<{ id: string; from_account: string; to_account: string; amount: number }>(
        'SELECT id, from_account, to_account, amount FROM transfers ORDER BY created_at',
      );
  const records = (key: string) =>
    cluster
      .db()
      .query<{ state: string; response_status: number | null }>(
        'SELECT state, response_status FROM idempotency_records WHERE key = $1',
        [key],
      );
  /**
   * Backends of this database that sit idle inside an open transaction while holding an advisory
   * lock (the key's claim) and the row-exclusive lock an UPDATE of `accounts` takes (the debit):
   * the handler is between debit and credit, with nothing committed.
   */
  const midTransferBackends = async () =>
    (
      await cluster.db().query<{ pid: number }>(
        `SELECT a.pid
           FROM pg_stat_activity a
          WHERE a.datname = current_database()
            AND a.state = 'idle in transaction'
            AND EXISTS (SELECT 1 FROM pg_locks l
                         WHERE l.pid = a.pid AND l.granted AND l.locktype = 'advisory')
            AND EXISTS (SELECT 1 FROM pg_locks l
                         WHERE l.pid = a.pid AND l.granted AND l.locktype = 'relation'
                           AND l.relation = 'accounts'::regclass
                           AND l.mode = 'RowExclusiveLock')`,
      )
    ).map((row) => row.pid);
  const backendAlive = async (pid: number) =>
    (await cluster.db().query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid])).length > 0;
  const idleInTransactionCount = async () =>
    Number(
      (
        await cluster.db().query<{ n: string }>(
          `SELECT count(*) AS n FROM pg_stat_activity
            WHERE datname = current_database() AND state = 'idle in transaction'`,
        )
      )[0].n,
    );

  it(
    'rolls back claim, debit and all of a killed process, and lets a retry run at once, once',
    async () => {
      const key = `transactional-crash-${adapter}`;
      // The doomed app sleeps between debit and credit, so it is killed with the transaction open.
      // The survivor boots before the crash so that its boot time is not counted in the retry's
      // time; after the doomed one, not beside it, because each runs the migrations at start.
      const doomed = await startApp(HANGING_LATENCY_MS);
      const survivor = await startApp(0);

      const from = await openAccount(doomed, 1000);
      const to = await openAccount(doomed, 0);
      expect(await balances(from, to)).toEqual([1000, 0]);

      const lost = transfer(doomed, key, from, to).then(
        () => 'answered',
        () => 'connection lost',
      );
      // Killing before the debit would prove nothing about rolling it back: wait until the
      // database shows it done inside the still open transaction.
      let pids: number[] = [];
      await waitFor(async () => (pids = await midTransferBackends()).length > 0, 30_000);
      expect(pids).toHaveLength(1);
      const [pid] = pids;

      const killedAt = Date.now();
      expect(await doomed.kill('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });
      expect(await lost).toBe('connection lost');

      // The kernel closed the dead process's sockets; PostgreSQL ends the backend (and aborts its
      // transaction) as soon as it reads that. Only then is the absence of rows meaningful.
      await waitFor(
        async () => !(await backendAlive(pid)) && (await idleInTransactionCount()) === 0,
        RETRY_WITHIN_MS,
      );
      expect(await records(key)).toEqual([]);
      expect(await transferRows()).toEqual([]);
      expect(await balances(from, to)).toEqual([1000, 0]);

      // No lease to wait out: the claim died with the transaction, so the retry runs right away.
      const retried = await survivorTransfer(survivor, key, from, to);
      const retryMs = Date.now() - killedAt;
      expect(retried.status).toBe(201);
      expect(retryMs).toBeLessThan(RETRY_WITHIN_MS);
      expect(retried.headers['idempotent-replayed']).toBeUndefined();
      expect(retried.headers['content-type']).toMatch(/^application\/json/);
      const moved = retried.body as TransferView;
      expect(moved).toEqual({ id: expect.any(String), from: from.id, to: to.id, amount: AMOUNT });
      expect(await balances(from, to)).toEqual([1000 - AMOUNT, AMOUNT]);
      expect(await transferRows()).toEqual([
        { id: moved.id, from_account: from.id, to_account: to.id, amount: AMOUNT },
      ]);
      expect(await records(key)).toEqual([{ state: 'completed', response_status: 201 }]);

      const replay = await survivorTransfer(survivor, key, from, to);
      expect(replay.status).toBe(201);
      expect(replay.headers['idempotent-replayed']).toBe('true');
      expect(replay.headers['content-type']).toBe(retried.headers['content-type']);
      expect(replay.text).toBe(retried.text);
      expect(await balances(from, to)).toEqual([1000 - AMOUNT, AMOUNT]);
      expect(await transferRows()).toHaveLength(1);

      // The survivor is not stuck on anything the crash left: a new key moves money normally.
      const next = await survivorTransfer(survivor, `${key}-next`, from, to);
      expect(next.status).toBe(201);
      expect(next.headers['idempotent-replayed']).toBeUndefined();
      const nextMoved = next.body as TransferView;
      expect(nextMoved).toEqual({
        id: expect.any(String),
        from: from.id,
        to: to.id,
        amount: AMOUNT,
      });
      expect(nextMoved.id).not.toBe(moved.id);
      expect(await balances(from, to)).toEqual([1000 - 2 * AMOUNT, 2 * AMOUNT]);
      expect((await transferRows()).map((row) => row.id)).toEqual([moved.id, nextMoved.id]);
      expect(await records(`${key}-next`)).toEqual([{ state: 'completed', response_status: 201 }]);
    },
    TEST_TIMEOUT_MS,
  );
});

import request from 'supertest';
import type { ProblemDetails } from '../../lib';
import type { SampleAppProcess } from '../utils/sample-app-process';
import { useSampleAppCluster } from '../utils/sample-app-cluster';
import { ADAPTERS } from '../utils/test-app';
import { waitFor } from '../utils/wait-for';

/** Lease of a claim. Long enough that a retry right after the crash surely lands inside it. */
const LEASE_MS = 5000;
const PAYMENT = { amount: 100, currency: 'EUR', reference: 'crash-1' };
/** Two app boots (migrations included) and a lease, on a busy 2-core machine. */
const TEST_TIMEOUT_MS = 90_000;

describe.each(ADAPTERS)('crash of a real process mid-request (%s)', (adapter) => {
  const cluster = useSampleAppCluster(adapter, { lockTimeoutMs: LEASE_MS });
  const startApp = (paymentLatencyMs: number) => cluster.start({ paymentLatencyMs });
  const pay = (app: SampleAppProcess, key: string) =>
    request(app.url).post('/payments').set('Idempotency-Key', key).send(PAYMENT);
  const paymentRows = async () =>
    Number(
      (
        await cluster
          .db()
          .query<{ n: string }>('SELECT count(*) AS n FROM payments WHERE reference = $1', [
            PAYMENT.reference,
          ])
      )[0].n,
    );
  const record = async (key: string) =>
    (
      await cluster
        .db()
        .query<{ state: string; lease_over: boolean | null }>(
          'SELECT state, locked_until <= now() AS lease_over FROM idempotency_records WHERE key = $1',
          [key],
        )
    )[0];

  it(
    'lets a retry take over the key of a killed process once its lease ends, and pays once',
    async () => {
      const key = `crash-${adapter}`;
      // The first app charges for 30 s, so it is killed while the handler runs. The second one
      // boots before the crash so that its boot time does not eat into the lease window tested
      // below; after the first, not beside it, because each runs the migrations at start.
      const doomed = await startApp(30_000);
      const survivor = await startApp(0);

      const lost = pay(doomed, key).then(
        () => 'answered',
        () => 'connection lost',
      );
      await waitFor(async () => (await record(key))?.state === 'in_flight');
      expect(await doomed.kill('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });
      expect(await lost).toBe('connection lost');

      // Within the lease the key still belongs to the dead process: the retry must wait.
      const early = await pay(survivor, key);
      expect(early.status).toBe(409);
      expect(early.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect((early.body as ProblemDetails).type).toBe(
        'urn:nestjs-idempotency:problem:key-in-flight',
      );
      const retryAfter = Number(early.headers['retry-after']);
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(LEASE_MS / 1000);
      expect(await paymentRows()).toBe(0);

      // Lease expiry is decided on the database clock, so wait on it rather than on ours.
      await waitFor(async () => (await record(key))?.lease_over === true, LEASE_MS + 15_000);
      const takeover = await pay(survivor, key);
      expect(takeover.status).toBe(201);
      expect(takeover.headers['idempotent-replayed']).toBeUndefined();
      expect(takeover.body).toMatchObject({ ...PAYMENT, status: 'succeeded' });
      expect(takeover.headers.location).toBe(`/payments/${(takeover.body as { id: string }).id}`);
      expect(await paymentRows()).toBe(1);
      expect((await record(key))?.state).toBe('completed');

      const replay = await pay(survivor, key);
      expect(replay.status).toBe(201);
      expect(replay.headers['idempotent-replayed']).toBe('true');
      expect(replay.text).toBe(takeover.text);
      expect(replay.headers.location).toBe(takeover.headers.location);
      expect(await paymentRows()).toBe(1);
    },
    TEST_TIMEOUT_MS,
  );
});

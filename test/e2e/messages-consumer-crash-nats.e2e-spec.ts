import {
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
} from '@nats-io/jetstream';
import { type NatsConnection, connect, nanos } from '@nats-io/transport-node';
import { randomBytes, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { durableName } from '../../lib/nats/jetstream-server.options';
import {
  PAYMENTS_CONSUMER_CRASH_POINTS,
  type PaymentsConsumerCrashPoint,
} from '../../sample-app/config';
import { PAYMENTS_REQUESTED } from '../../sample-app/payments-consumer/payments-consumer.constants';
import { PAYMENTS_CONSUMER_DURABLE } from '../../sample-app/payments-consumer/payments-consumer.jetstream';
import { NATS_URL, describeWithNats } from '../utils/nats';
import {
  type ExitStatus,
  type SampleAppProcess,
  startSampleAppProcess,
} from '../utils/sample-app-process';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';
import { waitFor } from '../utils/wait-for';

/*
 * The sample app's payments consumer on NATS JetStream (PAYMENTS_CONSUMER=nats) as real processes:
 * a consumer SIGKILLed after its write or after its commit leaves the message unacked, and
 * JetStream delivers it again to a second consumer once its ack wait is over; one payment is
 * made, and the message is acked.
 *
 * The handler's subject is fixed (payments.requested), and JetStream refuses two streams that
 * capture the same subject: the cells run one after another on one stream this file creates and
 * deletes.
 */

const TEST_TIMEOUT_MS = 90_000;
/** How long a consumer may take to handle what it was sent, or to die of it. */
const SETTLE_TIMEOUT_MS = 20_000;
/** The consumers' ack wait: a message whose consumer died comes back after it. */
const ACK_WAIT_MS = 1_000;
/** JetStream's smallest duplicate window: copies published further apart are all stored. */
const DUPLICATE_WINDOW_MS = 100;

/**
 * The payment the crash left behind, before any redelivery: none after the write (its
 * transaction died with the process), one after the commit.
 */
const LEFT_BEHIND: Record<PaymentsConsumerCrashPoint, number> = {
  'after-write': 0,
  'after-commit': 1,
};

describeWithNats()(
  'payments consumer on JetStream: a real SIGKILL between write, commit and ack',
  () => {
    let db: TestDatabase;
    let nc: NatsConnection;
    let js: JetStreamClient;
    let jsm: JetStreamManager;
    const stream = `PAYMENTS_CRASH_${randomBytes(4).toString('hex')}`;
    const durable = durableName(PAYMENTS_CONSUMER_DURABLE, PAYMENTS_REQUESTED);
    const started: SampleAppProcess[] = [];

    async function startConsumer(env: Record<string, string> = {}): Promise<SampleAppProcess> {
      const app = await startSampleAppProcess({
        env: {
          DATABASE_URL: db.url,
          PAYMENTS_CONSUMER: 'nats',
          NATS_URL,
          PAYMENTS_STREAM: stream,
          NATS_ACK_WAIT_MS: String(ACK_WAIT_MS),
          // Never called by the consumer; set, no provider is started beside the app.
          PAYMENT_PROVIDER_URL: 'http://127.0.0.1:9',
          IDEMPOTENCY_PURGE_INTERVAL_MS: '0',
          ...env,
        },
      });
      started.push(app);
      return app;
    }

    /** One `payments.requested` message, as any NATS client would publish it; JetStream must store it. */
    async function publish(msgID: string, data: unknown): Promise<void> {
      const ack = await js.publish(PAYMENTS_REQUESTED, JSON.stringify(data), { msgID });
      expect(ack.duplicate).toBe(false);
    }

    async function payments(reference: string): Promise<number> {
      const rows = await db.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM payments WHERE reference = $1',
        [reference],
      );
      return rows[0].n;
    }

    /** Whether the durable consumer has nothing left to deliver and nothing delivered unacked. */
    async function settled(): Promise<boolean> {
      const info = await jsm.consumers.info(stream, durable);
      return info.num_pending === 0 && info.num_ack_pending === 0;
    }

    /**
     * Once the consumer has nothing pending nor unacked, stops it gracefully; still nothing must be
     * pending nor unacked.
     */
    async function expectAllAckedBy(app: SampleAppProcess): Promise<void> {
      await waitFor(settled, SETTLE_TIMEOUT_MS);
      expect(await app.stop(SETTLE_TIMEOUT_MS)).toEqual({ code: 0, signal: null });
      const info = await jsm.consumers.info(stream, durable);
      expect({ pending: info.num_pending, unacked: info.num_ack_pending }).toEqual({
        pending: 0,
        unacked: 0,
      });
    }

    beforeAll(async () => {
      db = await createTestDatabase();
      nc = await connect({ servers: NATS_URL });
      js = jetstream(nc);
      jsm = await jetstreamManager(nc);
      // Created here, not by the consumer: with the smallest duplicate window, so that JetStream
      // stores copies published apart and the module is what dedupes them.
      await jsm.streams.add({
        name: stream,
        subjects: [PAYMENTS_REQUESTED],
        duplicate_window: nanos(DUPLICATE_WINDOW_MS),
      });
    });

    afterAll(async () => {
      await Promise.all(started.map((app) => app.kill()));
      await jsm?.streams.delete(stream).catch(() => undefined);
      await nc?.close().catch(() => undefined);
      await db?.drop();
    });

    it.each(PAYMENTS_CONSUMER_CRASH_POINTS)(
      'killed %s: the redelivery to another consumer makes one payment, and is acked',
      async (point) => {
        const id = `payment-${point}-${randomUUID()}`;
        const doomed = await startConsumer({ PAYMENTS_CONSUMER_CRASH_AT: point });
        await publish(id, { amount: 1250, currency: 'EUR', reference: id });

        expect(await within(doomed.exited, SETTLE_TIMEOUT_MS)).toEqual({
          code: null,
          signal: 'SIGKILL',
        });
        expect(await payments(id)).toBe(LEFT_BEHIND[point]);

        const survivor = await startConsumer();
        await waitFor(async () => (await payments(id)) === 1, SETTLE_TIMEOUT_MS);
        await expectAllAckedBy(survivor);
        expect(await payments(id)).toBe(1);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'the same message published 20 times, outside the duplicate window, makes one payment, every copy acked',
      async () => {
        const consumer = await startConsumer();
        const id = `payment-copies-${randomUUID()}`;
        for (let i = 0; i < 20; i++) {
          await publish(id, { amount: 990, currency: 'USD', reference: id });
          await sleep(DUPLICATE_WINDOW_MS + 50);
        }
        await waitFor(async () => (await payments(id)) === 1, SETTLE_TIMEOUT_MS);
        await expectAllAckedBy(consumer);
        expect(await payments(id)).toBe(1);
        expect((await jsm.streams.info(stream)).state.messages).toBeGreaterThanOrEqual(20);
      },
      TEST_TIMEOUT_MS,
    );
  },
);

/** `exited`, or a failure once `timeoutMs` passed. */
async function within(exited: Promise<ExitStatus>, timeoutMs: number): Promise<ExitStatus> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`the consumer still runs after ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

import amqp from 'amqplib';
import { randomBytes, randomUUID } from 'node:crypto';
import {
  PAYMENTS_CONSUMER_CRASH_POINTS,
  type PaymentsConsumerCrashPoint,
} from '../../sample-app/config';
import { RABBITMQ_URL, describeWithRabbitMq } from '../utils/rabbitmq';
import {
  type ExitStatus,
  type SampleAppProcess,
  startSampleAppProcess,
} from '../utils/sample-app-process';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';
import { waitFor } from '../utils/wait-for';

/*
 * The sample app's payments consumer (PAYMENTS_CONSUMER=rabbitmq) as real processes on a real
 * broker: a consumer SIGKILLed after its write or after its commit leaves the message to the
 * broker, which delivers it again to a second consumer; one payment is made, and the message is
 * acked, not dead-lettered.
 */

const TEST_TIMEOUT_MS = 90_000;
/** How long a consumer may take to handle what it was sent, or to die of it. */
const SETTLE_TIMEOUT_MS = 20_000;

/**
 * The payment the crash left behind, before any redelivery: none after the write (its
 * transaction died with the process), one after the commit.
 */
const LEFT_BEHIND: Record<PaymentsConsumerCrashPoint, number> = {
  'after-write': 0,
  'after-commit': 1,
};

describeWithRabbitMq()('payments consumer: a real SIGKILL between write, commit and ack', () => {
  let db: TestDatabase;
  let connection: amqp.ChannelModel;
  let channel: amqp.ConfirmChannel;
  const queue = `payments-consumer-crash-${randomBytes(4).toString('hex')}`;
  const deadLetters = `${queue}.dead`;
  const started: SampleAppProcess[] = [];

  async function startConsumer(env: Record<string, string> = {}): Promise<SampleAppProcess> {
    const app = await startSampleAppProcess({
      env: {
        DATABASE_URL: db.url,
        PAYMENTS_CONSUMER: 'rabbitmq',
        RABBITMQ_URL,
        PAYMENTS_QUEUE: queue,
        // Never called by the consumer; set, no provider is started beside the app.
        PAYMENT_PROVIDER_URL: 'http://127.0.0.1:9',
        IDEMPOTENCY_PURGE_INTERVAL_MS: '0',
        ...env,
      },
    });
    started.push(app);
    return app;
  }

  /**
   * One `payments.requested` message in Nest's envelope, as any AMQP client would send it; resolves
   * once the broker has it.
   */
  async function publish(messageId: string, data: unknown): Promise<void> {
    await new Promise<void>((resolve, reject) =>
      channel.sendToQueue(
        queue,
        Buffer.from(JSON.stringify({ pattern: 'payments.requested', data })),
        { messageId, persistent: true, contentType: 'application/json' },
        (error: unknown) => (error ? reject(error) : resolve()),
      ),
    );
  }

  async function payments(reference: string): Promise<number> {
    const rows = await db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM payments WHERE reference = $1',
      [reference],
    );
    return rows[0].n;
  }

  /** Ready messages only: a delivery a live consumer has not acked yet is not counted. */
  async function ready(name: string): Promise<number> {
    return (await channel.checkQueue(name)).messageCount;
  }

  /**
   * Once the consumer holds every message, stops it gracefully: it settles the deliveries in hand,
   * then its channel closes, and the broker takes back any delivery it did not ack. The queue and
   * its dead letters must then both be empty.
   */
  async function expectAllAckedBy(app: SampleAppProcess): Promise<void> {
    await waitFor(async () => (await ready(queue)) === 0, SETTLE_TIMEOUT_MS);
    expect(await app.stop(SETTLE_TIMEOUT_MS)).toEqual({ code: 0, signal: null });
    expect(await ready(queue)).toBe(0);
    expect(await ready(deadLetters)).toBe(0);
  }

  beforeAll(async () => {
    db = await createTestDatabase();
    connection = await amqp.connect(RABBITMQ_URL);
    channel = await connection.createConfirmChannel();
  });

  afterAll(async () => {
    await Promise.all(started.map((app) => app.kill()));
    await channel?.deleteQueue(queue).catch(() => undefined);
    await channel?.deleteQueue(deadLetters).catch(() => undefined);
    await connection?.close().catch(() => undefined);
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
    'the same message published 20 times makes one payment, every copy acked',
    async () => {
      const consumer = await startConsumer();
      const id = `payment-copies-${randomUUID()}`;
      await Promise.all(
        Array.from({ length: 20 }, () =>
          publish(id, { amount: 990, currency: 'USD', reference: id }),
        ),
      );
      await waitFor(async () => (await payments(id)) === 1, SETTLE_TIMEOUT_MS);
      await expectAllAckedBy(consumer);
      expect(await payments(id)).toBe(1);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'an invalid payment request is dead-lettered, and makes no payment',
    async () => {
      const consumer = await startConsumer();
      const id = `payment-invalid-${randomUUID()}`;
      await publish(id, { amount: -5, currency: 'euro', reference: id });
      await waitFor(async () => (await ready(deadLetters)) === 1, SETTLE_TIMEOUT_MS);
      const dead = await channel.get(deadLetters, { noAck: true });
      expect(dead && dead.properties.messageId).toBe(id);
      await expectAllAckedBy(consumer);
      expect(await payments(id)).toBe(0);
    },
    TEST_TIMEOUT_MS,
  );
});

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

import type { INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ClientRMQ, RmqRecordBuilder, Transport } from '@nestjs/microservices';
import amqp from 'amqplib';
import { randomBytes, randomUUID } from 'node:crypto';
import { firstValueFrom } from 'rxjs';
import type { IdempotencyOutcomeEvent } from '../../lib';
import {
  CREATE_MESSAGE_ATTEMPTS_SQL,
  MessageConsumerModule,
  type PaymentRequested,
} from './fixtures/message-consumer';
import { RABBITMQ_URL, describeWithRabbitMq } from '../utils/rabbitmq';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';
import { waitFor } from '../utils/wait-for';

const PROBLEM_BASE = 'urn:nestjs-idempotency:problem:';

describeWithRabbitMq(true)('@Idempotent() on RabbitMQ message handlers', () => {
  let db: TestDatabase;
  let connection: amqp.ChannelModel;
  let channel: amqp.ConfirmChannel;
  const queue = `idem-test-${randomBytes(4).toString('hex')}`;
  const deadLetters = `${queue}.dead`;
  const consumers: INestMicroservice[] = [];
  const outcomes: IdempotencyOutcomeEvent[] = [];

  async function startConsumer(): Promise<INestMicroservice> {
    const app = await NestFactory.createMicroservice(
      MessageConsumerModule.register({
        databaseUrl: db.url,
        onOutcome: (event) => outcomes.push(event),
      }),
      {
        transport: Transport.RMQ,
        options: {
          urls: [RABBITMQ_URL],
          queue,
          noAck: false,
          prefetchCount: 20,
          queueOptions: {
            durable: false,
            deadLetterExchange: '',
            deadLetterRoutingKey: deadLetters,
          },
        },
        logger: false,
      },
    );
    await app.listen();
    consumers.push(app);
    return app;
  }

  async function publish(pattern: string, data: unknown, messageId?: string): Promise<void> {
    channel.sendToQueue(queue, Buffer.from(JSON.stringify({ pattern, data })), {
      ...(messageId !== undefined && { messageId }),
    });
    await channel.waitForConfirms();
  }

  async function runs(route: string, key: string): Promise<number> {
    const rows = await db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM executions WHERE route = $1 AND idem_key = $2',
      [route, key],
    );
    return rows[0].n;
  }

  async function attempts(key: string): Promise<number> {
    const rows = await db.query<{ attempts: number }>(
      'SELECT attempts FROM message_attempts WHERE idem_key = $1',
      [key],
    );
    return rows[0]?.attempts ?? 0;
  }

  /** Messages that reached the dead-letter queue, taken off it (their ids). */
  async function takeDeadLetters(): Promise<string[]> {
    const ids: string[] = [];
    for (;;) {
      const message = await channel.get(deadLetters, { noAck: true });
      if (message === false) {
        return ids;
      }
      ids.push(String(message.properties.messageId));
    }
  }

  /** Messages the broker still holds for the queue: ready ones, and unacked ones once consumers close. */
  async function waitUntilSettled(): Promise<void> {
    await waitFor(async () => (await channel.checkQueue(queue)).messageCount === 0, 20_000);
  }

  /** A request-reply client of the consumers' queue, as an application's other service has. */
  async function connectClient(): Promise<ClientRMQ> {
    const client = new ClientRMQ({
      urls: [RABBITMQ_URL],
      queue,
      queueOptions: { durable: false, deadLetterExchange: '', deadLetterRoutingKey: deadLetters },
    });
    await client.connect();
    return client;
  }

  const payment = (extra: Partial<PaymentRequested> = {}): PaymentRequested => ({
    paymentId: randomUUID(),
    amount: 1250,
    ...extra,
  });

  beforeAll(async () => {
    db = await createTestDatabase();
    connection = await amqp.connect(RABBITMQ_URL);
    // Confirmed publishes: a message is in the queue before a test looks at the queue.
    channel = await connection.createConfirmChannel();
    await channel.assertQueue(deadLetters, { durable: false });
    await startConsumer();
    await db.query(CREATE_MESSAGE_ATTEMPTS_SQL);
  });

  afterAll(async () => {
    for (const app of consumers) {
      await app.close().catch(() => undefined);
    }
    await channel?.deleteQueue(queue).catch(() => undefined);
    await channel?.deleteQueue(deadLetters).catch(() => undefined);
    await connection?.close().catch(() => undefined);
    await db?.drop();
  });

  it.each(['payments.requested', 'payments.lease'])(
    '%s: the same message published 20 times runs once; the copies replay its record',
    async (pattern) => {
      const id = `pay-${randomUUID()}`;
      const data = payment();
      for (let i = 0; i < 20; i++) {
        await publish(pattern, data, id);
      }
      const route = pattern === 'payments.requested' ? 'requested' : 'lease';
      await waitFor(async () => (await runs(route, id)) === 1, 20_000);
      await waitUntilSettled();
      await waitFor(
        async () =>
          outcomes.filter((o) => o.handler === route && o.outcome === 'replayed').length >= 19,
        20_000,
      );
      expect(await runs(route, id)).toBe(1);
      // Not even a rolled-back run: the handler started once.
      expect(await attempts(id)).toBe(1);
    },
  );

  it('two consumers on one queue racing on duplicates run each message once', async () => {
    await startConsumer();
    const ids = Array.from({ length: 10 }, () => `race-${randomUUID()}`);
    for (let round = 0; round < 6; round++) {
      for (const id of ids) {
        await publish('payments.requested', { ...payment(), paymentId: id, holdMs: 20 }, id);
      }
    }
    await waitFor(async () => {
      const counts = await Promise.all(ids.map((id) => runs('requested', id)));
      return counts.every((n) => n === 1);
    }, 30_000);
    await waitUntilSettled();
    for (const id of ids) {
      expect(await runs('requested', id)).toBe(1);
    }
  });

  it.each([
    ['payments.requested', 'requested'],
    ['payments.lease', 'lease'],
  ])(
    '%s: a failed run is delivered again, and the later success runs once',
    async (pattern, route) => {
      const id = `fail-${randomUUID()}`;
      const data = payment({ failRuns: 2 });
      await publish(pattern, data, id);
      await waitFor(async () => (await runs(route, id)) === 1, 20_000);
      await waitUntilSettled();
      expect(await attempts(id)).toBe(3);
      // A copy published after the success replays.
      const replays = () =>
        outcomes.filter((o) => o.handler === route && o.outcome === 'replayed').length;
      const before = replays();
      await publish(pattern, data, id);
      await waitFor(async () => replays() === before + 1, 10_000);
      expect(await attempts(id)).toBe(3);
      expect(await runs(route, id)).toBe(1);
    },
  );

  it('a poison message goes to the dead-letter queue and does not block the ones behind it', async () => {
    await takeDeadLetters();
    const poison = `poison-${randomUUID()}`;
    const good = `good-${randomUUID()}`;
    await publish('payments.requested', { paymentId: 42 }, poison);
    await publish('payments.requested', payment(), good);
    await waitFor(async () => (await runs('requested', good)) === 1, 20_000);
    await waitUntilSettled();
    await waitFor(async () => (await channel.checkQueue(deadLetters)).messageCount >= 1, 10_000);
    expect(await takeDeadLetters()).toEqual([poison]);
    // Its redelivered copy is refused again, from the record, without running.
    await publish('payments.requested', { paymentId: 42 }, poison);
    await waitFor(async () => (await channel.checkQueue(deadLetters)).messageCount >= 1, 10_000);
    expect(await takeDeadLetters()).toEqual([poison]);
    expect(await runs('requested', poison)).toBe(0);
  });

  it('the same id with another payload is dead-lettered and reported, not run', async () => {
    await takeDeadLetters();
    const id = `mismatch-${randomUUID()}`;
    await publish('payments.requested', payment({ amount: 100 }), id);
    await waitFor(async () => (await runs('requested', id)) === 1, 20_000);
    await publish('payments.requested', payment({ amount: 999 }), id);
    await waitFor(async () => (await channel.checkQueue(deadLetters)).messageCount >= 1, 10_000);
    expect(await takeDeadLetters()).toEqual([id]);
    expect(await runs('requested', id)).toBe(1);
    expect(outcomes.some((o) => o.outcome === 'mismatch' && o.handler === 'requested')).toBe(true);
  });

  it('a message without an id is dead-lettered and reported as key-missing, not run', async () => {
    await takeDeadLetters();
    const before = await runs('requested', 'undefined');
    await publish('payments.requested', payment());
    await waitFor(async () => (await channel.checkQueue(deadLetters)).messageCount >= 1, 10_000);
    expect(await takeDeadLetters()).toEqual(['undefined']);
    expect(await runs('requested', 'undefined')).toBe(before);
    expect(outcomes.some((o) => o.outcome === 'key-missing' && o.method === 'EVENT')).toBe(true);
  });

  it("an application's RpcException subclass is dead-lettered, not delivered again", async () => {
    await takeDeadLetters();
    const id = `declined-${randomUUID()}`;
    await publish('payments.declined', payment(), id);
    await waitFor(async () => (await channel.checkQueue(deadLetters)).messageCount >= 1, 10_000);
    expect(await takeDeadLetters()).toEqual([id]);
    expect(await attempts(id)).toBe(1);
  });

  it('a key that is not a string is dead-lettered, and the messages behind it still run', async () => {
    await takeDeadLetters();
    const good = randomUUID();
    await publish('payments.keyed', { paymentId: 4242, amount: 1 }, 'numeric-key');
    await publish('payments.keyed', { paymentId: good, amount: 1 }, 'string-key');
    await waitFor(async () => (await runs('keyed', good)) === 1, 10_000);
    await waitFor(async () => (await channel.checkQueue(deadLetters)).messageCount >= 1, 10_000);
    expect(await takeDeadLetters()).toEqual(['numeric-key']);
    expect(await runs('keyed', '4242')).toBe(0);
    expect(outcomes.some((o) => o.outcome === 'key-invalid' && o.handler === 'keyed')).toBe(true);
  });

  it('an interceptor that subscribes again after a failure does not run the handler unclaimed', async () => {
    const id = `retried-${randomUUID()}`;
    await publish('payments.retried', payment({ failRuns: 1 }), id);
    await waitFor(async () => (await runs('retried', id)) === 1, 20_000);
    await waitUntilSettled();
    // The in-process retry was refused; the broker's redelivery ran it, claimed.
    expect(await attempts(id)).toBe(2);
    const claimed = outcomes.filter((o) => o.handler === 'retried' && o.outcome === 'claimed');
    expect(claimed).toHaveLength(2);
  });

  it('a request-reply duplicate gets the stored reply; a reused id with another payload gets a problem', async () => {
    const client = await connectClient();
    try {
      const id = `quote-${randomUUID()}`;
      const data = payment({ amount: 700 });
      const send = (body: PaymentRequested) =>
        firstValueFrom(
          client.send<{ quoteId: string; amount: number }>(
            'payments.quote',
            new RmqRecordBuilder(body).setOptions({ messageId: id }).build(),
          ),
        );
      const first = await send(data);
      const second = await send(data);
      expect(second).toEqual(first);
      expect(first.amount).toBe(700);
      expect(await runs('quote', id)).toBe(1);
      await expect(send({ ...data, amount: 701 })).rejects.toMatchObject({
        type: `${PROBLEM_BASE}key-mismatch`,
        status: 422,
      });
      expect(await runs('quote', id)).toBe(1);
    } finally {
      await client.close();
    }
  });

  it('a request-reply caller gets a failure as an error, and its retry with the same id runs', async () => {
    const client = await connectClient();
    try {
      const id = `flaky-${randomUUID()}`;
      const data = payment({ amount: 300, failRuns: 1 });
      const send = () =>
        firstValueFrom(
          client.send<{ amount: number; attempt: number }>(
            'payments.flaky-quote',
            new RmqRecordBuilder(data).setOptions({ messageId: id }).build(),
          ),
        );
      await expect(send()).rejects.toBeDefined();
      // Not delivered again behind the caller's back: the failed run was the only one.
      await waitUntilSettled();
      expect(await attempts(id)).toBe(1);
      expect(await send()).toEqual({ amount: 300, attempt: 2 });
      expect(await send()).toEqual({ amount: 300, attempt: 2 });
      expect(await runs('flaky-quote', id)).toBe(1);
    } finally {
      await client.close();
    }
  });

  it('every delivery of this file was settled: closing the consumers returns none to the queue', async () => {
    for (const app of consumers.splice(0)) {
      await app.close();
    }
    // Unacked deliveries go back to the queue when their channel closes.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect((await channel.checkQueue(queue)).messageCount).toBe(0);
  });
});

import {
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
} from '@nats-io/jetstream';
import { type NatsConnection, connect, headers, nanos } from '@nats-io/transport-node';
import { Controller, type INestMicroservice, Module } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { NestFactory } from '@nestjs/core';
import { createHash, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { IdempotencyOutcomeEvent } from '../../lib';
import { JetStreamServer } from '../../lib/nats';
import { durableName } from '../../lib/nats/jetstream-server.options';
import {
  CREATE_MESSAGE_ATTEMPTS_SQL,
  JetStreamConsumerModule,
  PATTERNS,
  type PaymentRequested,
  SUBJECTS,
} from './fixtures/jetstream-consumer';
import { NATS_URL, describeWithNats } from '../utils/nats';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';
import { waitFor } from '../utils/wait-for';

const ACK_WAIT_MS = 1_000;
const MAX_DELIVER = 5;
const DURABLE = 'idem';
/** JetStream's smallest duplicate window: copies published further apart are all stored. */
const DUPLICATE_WINDOW_MS = 100;

describeWithNats(true)('@Idempotent() on NATS JetStream message handlers', () => {
  let db: TestDatabase;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let jsm: JetStreamManager;
  const stream = SUBJECTS.toUpperCase();
  const deadStream = `${stream}_DEAD`;
  const deadSubject = `${SUBJECTS}.dead`;
  const consumers: INestMicroservice[] = [];
  const outcomes: IdempotencyOutcomeEvent[] = [];

  /** Each consumer app's own outcomes, in start order. */
  const outcomesByApp: IdempotencyOutcomeEvent[][] = [];

  async function startConsumer(): Promise<INestMicroservice> {
    const own: IdempotencyOutcomeEvent[] = [];
    outcomesByApp.push(own);
    const app = await NestFactory.createMicroservice(
      JetStreamConsumerModule.register({
        databaseUrl: db.url,
        onOutcome: (event) => {
          outcomes.push(event);
          own.push(event);
        },
      }),
      {
        strategy: new JetStreamServer({
          servers: NATS_URL,
          stream,
          durable: DURABLE,
          ackWaitMs: ACK_WAIT_MS,
          nakDelayMs: 200,
          maxDeliver: MAX_DELIVER,
          deadLetterSubject: deadSubject,
        }),
        logger: false,
      },
    );
    await app.listen();
    consumers.push(app);
    return app;
  }

  /** Publishes one copy; JetStream must store it (not drop it as a duplicate). Its stream sequence. */
  async function publish(subject: string, data: unknown, msgID?: string): Promise<number> {
    const body = typeof data === 'string' ? data : JSON.stringify(data);
    const ack = await js.publish(subject, body, msgID === undefined ? {} : { msgID });
    expect(ack.duplicate).toBe(false);
    return ack.seq;
  }

  /** Copies of one message, each stored by JetStream: spaced beyond its duplicate window. */
  async function publishCopies(subject: string, data: unknown, msgID: string, n: number) {
    for (let i = 0; i < n; i++) {
      await publish(subject, data, msgID);
      await sleep(DUPLICATE_WINDOW_MS + 50);
    }
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

  const consumerOf = (pattern: string) => durableName(DURABLE, pattern);

  /** The consumer's counters: messages not yet delivered, delivered and unsettled, redelivered. */
  async function consumerState(pattern: string) {
    const info = await jsm.consumers.info(stream, consumerOf(pattern));
    return {
      pending: info.num_pending,
      ackPending: info.num_ack_pending,
      redelivered: info.num_redelivered,
    };
  }

  async function waitUntilSettled(pattern: string): Promise<void> {
    await waitFor(async () => {
      const state = await consumerState(pattern);
      return state.pending === 0 && state.ackPending === 0;
    }, 20_000);
  }

  /** The messages copied to the dead-letter subject so far: their `Nats-Msg-Id`s. */
  async function deadLetters(): Promise<string[]> {
    const info = await jsm.streams.info(deadStream);
    const ids: string[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages; seq++) {
      const message = await jsm.streams.getMessage(deadStream, { seq });
      ids.push(message?.header.get('Nats-Dead-Letter-Msg-Id') ?? '');
    }
    return ids;
  }

  /**
   * What consumers told JetStream about each message (`+ACK`, `-NAK`, `+WPI`, `+TERM`), seen on
   * the `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>...` subjects they answer on.
   */
  const settlements: { streamSeq: number; delivered: number; verb: string }[] = [];
  function watchSettlements(): void {
    const subscription = nc.subscribe(`$JS.ACK.${stream}.>`);
    void (async () => {
      for await (const message of subscription) {
        const tokens = message.subject.split('.');
        settlements.push({
          delivered: Number(tokens[4]),
          streamSeq: Number(tokens[5]),
          verb: message.string().split(' ')[0] || '+ACK',
        });
      }
    })();
  }

  /** The stream sequences of MSG_TERMINATED advisories: JetStream's own dead-letter signal. */
  const terminated: number[] = [];
  function watchTerminations(): void {
    const subscription = nc.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.${stream}.>`);
    void (async () => {
      for await (const message of subscription) {
        terminated.push(message.json<{ stream_seq: number }>().stream_seq);
      }
    })();
  }

  const payment = (extra: Partial<PaymentRequested> = {}): PaymentRequested => ({
    paymentId: randomUUID(),
    amount: 1250,
    ...extra,
  });

  beforeAll(async () => {
    db = await createTestDatabase();
    await db.query(CREATE_MESSAGE_ATTEMPTS_SQL);
    nc = await connect({ servers: NATS_URL });
    jsm = await jetstreamManager(nc);
    js = jetstream(nc);
    watchSettlements();
    watchTerminations();
    await jsm.streams.add({
      name: stream,
      subjects: Object.values(PATTERNS),
      duplicate_window: nanos(DUPLICATE_WINDOW_MS),
    });
    await jsm.streams.add({ name: deadStream, subjects: [deadSubject] });
    await startConsumer();
  }, 30_000);

  afterAll(async () => {
    for (const app of consumers) {
      await app.close().catch(() => undefined);
    }
    await jsm?.streams.delete(stream).catch(() => undefined);
    await jsm?.streams.delete(deadStream).catch(() => undefined);
    await nc?.close().catch(() => undefined);
    await db?.drop();
  });

  it('the stream keeps every copy: its duplicate window does not hide them from the module', async () => {
    const id = `window-${randomUUID()}`;
    const before = (await jsm.streams.info(stream)).state.messages;
    await publishCopies(PATTERNS.plain, payment(), id, 3);
    expect((await jsm.streams.info(stream)).state.messages - before).toBe(3);
    // Within the window JetStream itself drops a copy: the tests space theirs out.
    const h = headers();
    h.set('Nats-Msg-Id', `burst-${randomUUID()}`);
    await js.publish(PATTERNS.plain, JSON.stringify(payment()), { headers: h });
    const copy = await js.publish(PATTERNS.plain, JSON.stringify(payment()), { headers: h });
    expect(copy.duplicate).toBe(true);
    await waitUntilSettled(PATTERNS.plain);
  });

  it.each([
    [PATTERNS.transactional, 'requested'],
    [PATTERNS.lease, 'lease'],
  ])(
    '%s: the same message published 20 times runs once; the copies replay its record',
    async (pattern, route) => {
      const id = `pay-${randomUUID()}`;
      const replayedBefore = outcomes.filter(
        (o) => o.handler === route && o.outcome === 'replayed',
      ).length;
      await publishCopies(pattern, payment(), id, 20);
      await waitFor(async () => (await runs(route, id)) === 1, 20_000);
      await waitUntilSettled(pattern);
      await waitFor(
        async () =>
          outcomes.filter((o) => o.handler === route && o.outcome === 'replayed').length -
            replayedBefore >=
          19,
        20_000,
      );
      expect(await runs(route, id)).toBe(1);
    },
    30_000,
  );

  it('two consumer apps on one durable consumer racing on duplicates run each message once', async () => {
    await startConsumer();
    const ids = Array.from({ length: 10 }, () => `race-${randomUUID()}`);
    for (let round = 0; round < 6; round++) {
      for (const id of ids) {
        await publish(PATTERNS.transactional, { ...payment(), paymentId: id, holdMs: 20 }, id);
      }
      await sleep(DUPLICATE_WINDOW_MS + 50);
    }
    await waitFor(async () => {
      const counts = await Promise.all(ids.map((id) => runs('requested', id)));
      return counts.every((n) => n === 1);
    }, 30_000);
    await waitUntilSettled(PATTERNS.transactional);
    for (const id of ids) {
      expect(await runs('requested', id)).toBe(1);
    }
    // Both apps took deliveries of this test's messages: they did race.
    const hashes = new Set(ids.map((id) => createHash('sha256').update(id).digest('hex')));
    const [first, second] = outcomesByApp
      .slice(-2)
      .map((own) => own.filter((o) => o.keyHash !== undefined && hashes.has(o.keyHash)).length);
    expect(first).toBeGreaterThan(0);
    expect(second).toBeGreaterThan(0);
  }, 40_000);

  it.each([
    [PATTERNS.transactional, 'requested'],
    [PATTERNS.lease, 'lease'],
  ])(
    '%s: a failed run is delivered again, and the later success runs once',
    async (pattern, route) => {
      const id = `fail-${randomUUID()}`;
      const data = payment({ failRuns: 2 });
      await publish(pattern, data, id);
      await waitFor(async () => (await runs(route, id)) === 1, 20_000);
      await waitUntilSettled(pattern);
      expect(await attempts(id)).toBe(3);
      // A copy published after the success replays.
      await sleep(DUPLICATE_WINDOW_MS + 50);
      await publish(pattern, data, id);
      await waitUntilSettled(pattern);
      expect(await attempts(id)).toBe(3);
      expect(await runs(route, id)).toBe(1);
    },
    30_000,
  );

  it('a poison message is terminated and copied to the dead letters; the one behind it runs', async () => {
    const badJson = `poison-json-${randomUUID()}`;
    const badPayload = `poison-payload-${randomUUID()}`;
    const good = `good-${randomUUID()}`;
    const poisons = [
      await publish(PATTERNS.transactional, 'not json {', badJson),
      await publish(PATTERNS.transactional, { paymentId: 42 }, badPayload),
    ];
    await publish(PATTERNS.transactional, payment(), good);
    await waitFor(async () => (await runs('requested', good)) === 1, 20_000);
    await waitUntilSettled(PATTERNS.transactional);
    await waitFor(async () => (await deadLetters()).length >= 2, 10_000);
    expect((await deadLetters()).filter((id) => id.startsWith('poison-')).sort()).toEqual(
      [badJson, badPayload].sort(),
    );
    const seen = settlements.filter((s) => poisons.includes(s.streamSeq));
    expect(seen.map(({ delivered, verb }) => ({ delivered, verb }))).toEqual([
      { delivered: 1, verb: '+TERM' },
      { delivered: 1, verb: '+TERM' },
    ]);
    await waitFor(async () => poisons.every((seq) => terminated.includes(seq)), 5_000);
    expect(await attempts(badJson)).toBe(0);
    expect(await attempts(badPayload)).toBe(0);
  });

  it('a message that fails on every delivery is dead-lettered on its last one, not dropped', async () => {
    const id = `doomed-${randomUUID()}`;
    const seq = await publish(PATTERNS.lease, payment({ failRuns: 1_000 }), id);
    await waitFor(async () => (await deadLetters()).includes(id), 20_000);
    await waitUntilSettled(PATTERNS.lease);
    const seen = settlements.filter((s) => s.streamSeq === seq && s.verb !== '+WPI');
    expect(seen.map((s) => s.verb)).toEqual([
      ...Array<string>(MAX_DELIVER - 1).fill('-NAK'),
      '+TERM',
    ]);
    expect(seen.at(-1)!.delivered).toBe(MAX_DELIVER);
    expect(await attempts(id)).toBe(MAX_DELIVER);
    expect(await runs('lease', id)).toBe(0);
  }, 30_000);

  it('a duplicate arriving while the first runs past ackWait is not redelivered meanwhile and ends with one run', async () => {
    const id = `held-${randomUUID()}`;
    const data = payment({ holdMs: ACK_WAIT_MS * 2.5 });
    const first = await publish(PATTERNS.transactional, data, id);
    await waitFor(async () => (await attempts(id)) === 1, 10_000);
    await sleep(DUPLICATE_WINDOW_MS + 50);
    const duplicate = await publish(PATTERNS.transactional, data, id);
    await waitFor(async () => (await runs('requested', id)) === 1, 20_000);
    await waitUntilSettled(PATTERNS.transactional);
    expect(await attempts(id)).toBe(1);
    const seen = settlements.filter((s) => s.streamSeq === first || s.streamSeq === duplicate);
    // Both were kept alive past ackWait, each delivered once and acked once.
    expect(seen.filter((s) => s.verb === '+WPI').length).toBeGreaterThanOrEqual(2);
    expect(seen.filter((s) => s.verb !== '+WPI')).toEqual([
      { streamSeq: first, delivered: 1, verb: '+ACK' },
      { streamSeq: duplicate, delivered: 1, verb: '+ACK' },
    ]);
  }, 30_000);

  it('refuses to start when told not to create consumers that do not exist', async () => {
    const app = await NestFactory.createMicroservice(
      JetStreamConsumerModule.register({ databaseUrl: db.url }),
      {
        strategy: new JetStreamServer({
          servers: NATS_URL,
          stream,
          durable: 'absent',
          ensure: false,
        }),
        logger: false,
      },
    );
    await expect(app.listen()).rejects.toThrow(/consumer not found/i);
    await app.close().catch(() => undefined);
  });

  it('refuses to start with a request-reply handler, whose reply no caller would get', async () => {
    @Controller()
    class Quotes {
      @MessagePattern(`${SUBJECTS}.quotes`)
      quote(@Payload() _quote: unknown) {
        return { ok: true };
      }
    }
    @Module({ controllers: [Quotes] })
    class QuotesModule {}
    const app = await NestFactory.createMicroservice(QuotesModule, {
      strategy: new JetStreamServer({ servers: NATS_URL, stream, ensure: false }),
      logger: false,
    });
    await expect(app.listen()).rejects.toThrow(/is a @MessagePattern\(\) handler/);
    await app.close().catch(() => undefined);
  });

  it('a handler without @Idempotent() is acked by the transport', async () => {
    const id = randomUUID();
    const seq = await publish(PATTERNS.plain, { ...payment(), paymentId: id });
    await waitFor(async () => (await runs('plain', id)) === 1, 10_000);
    await waitUntilSettled(PATTERNS.plain);
    await waitFor(async () => settlements.some((s) => s.streamSeq === seq), 5_000);
    expect(settlements.filter((s) => s.streamSeq === seq)).toEqual([
      { streamSeq: seq, delivered: 1, verb: '+ACK' },
    ]);
  });
});

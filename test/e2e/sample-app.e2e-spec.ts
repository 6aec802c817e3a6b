import { randomUUID } from 'node:crypto';
import type { Response } from 'supertest';
import { AppModule } from '../../sample-app/app.module';
import { readConfig } from '../../sample-app/config';
import type { PaymentView } from '../../sample-app/payments/payments.service';
import { ADAPTERS, type TestApp, createTestApp } from '../utils/test-app';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';

const PROBLEM = /^application\/problem\+json/;
const JSON_TYPE = /^application\/json/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface PaymentBody {
  amount?: unknown;
  currency?: unknown;
  reference?: unknown;
}

describe.each(ADAPTERS)('sample app: payments contract (%s)', (adapter) => {
  let db: TestDatabase;
  let app: TestApp;

  beforeAll(async () => {
    db = await createTestDatabase();
    const config = {
      ...readConfig({}),
      databaseUrl: db.url,
      // A simulated card network latency, so that parallel duplicates overlap the first execution.
      paymentLatencyMs: 100,
    };
    app = await createTestApp(adapter, AppModule.register(config));
  });

  afterAll(async () => {
    await app?.close();
    await db?.drop();
  });

  /** A fresh reference per test: payments are counted by it in the database. */
  const newReference = (label: string) => `${label}-${adapter}-${randomUUID()}`;

  const pay = (key: string | undefined, body: PaymentBody, client?: string) => {
    const req = app.http().post('/payments');
    if (key !== undefined) {
      req.set('Idempotency-Key', key);
    }
    if (client !== undefined) {
      req.set('Authorization', `Bearer ${client}`);
    }
    return req.send(body);
  };

  const list = (reference: string, client?: string) => {
    const req = app.http().get('/payments').query({ reference });
    return client === undefined ? req : req.set('Authorization', `Bearer ${client}`);
  };

  const paymentRows = async (reference: string) =>
    Number(
      (
        await db.query<{ n: string }>('SELECT count(*) AS n FROM payments WHERE reference = $1', [
          reference,
        ])
      )[0].n,
    );

  const allPayments = async () =>
    Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM payments'))[0].n);

  const expectReplayOf = (retry: Response, first: Response) => {
    expect(retry.status).toBe(first.status);
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(retry.text).toBe(first.text);
    expect(retry.headers['content-type']).toBe(first.headers['content-type']);
    expect(retry.headers.location).toBe(first.headers.location);
  };

  it('GET /health: 200 with the PostgreSQL store up and its purge backlog', async () => {
    const response = await app.http().get('/health');
    expect(response.status).toBe(200);
    expect(response.body).toEqual({
      status: 'ok',
      info: { idempotency: expect.any(Object) },
      error: {},
      details: {
        idempotency: {
          status: 'up',
          store: {
            status: 'up',
            kind: 'postgres',
            responseMs: expect.any(Number),
            purgeBacklog: 0,
            purgeBacklogCapped: false,
          },
        },
      },
    });
  });

  it('creates a payment: 201 with the payment and its Location', async () => {
    const reference = newReference('create');
    const response = await pay(randomUUID(), { amount: 1250, currency: 'EUR', reference });

    expect(response.status).toBe(201);
    expect(response.headers['content-type']).toMatch(JSON_TYPE);
    expect(response.headers['idempotent-replayed']).toBeUndefined();
    const payment = response.body as PaymentView;
    expect(payment).toEqual({
      id: expect.stringMatching(UUID),
      amount: 1250,
      currency: 'EUR',
      reference,
      status: 'succeeded',
      createdAt: expect.any(String),
    });
    expect(new Date(payment.createdAt).toISOString()).toBe(payment.createdAt);
    expect(response.headers.location).toBe(`/payments/${payment.id}`);
    expect(await paymentRows(reference)).toBe(1);
  });

  it('answers reference null when the body has none', async () => {
    const response = await pay(randomUUID(), { amount: 5, currency: 'USD' });
    expect(response.status).toBe(201);
    expect((response.body as PaymentView).reference).toBeNull();
  });

  it('requires a key: 400 problem+json, and no payment', async () => {
    const reference = newReference('no-key');
    const response = await pay(undefined, { amount: 100, currency: 'EUR', reference });

    expect(response.status).toBe(400);
    expect(response.headers['content-type']).toMatch(PROBLEM);
    expect((response.body as { type: string }).type).toBe(
      'urn:nestjs-idempotency:problem:key-missing',
    );
    expect(await paymentRows(reference)).toBe(0);
  });

  it('replays a retry with the identical bytes, status and Location, without paying twice', async () => {
    const reference = newReference('retry');
    const key = randomUUID();
    const body = { amount: 4200, currency: 'GBP', reference };
    const first = await pay(key, body);
    expect(first.status).toBe(201);

    const retry = await pay(key, body);
    expectReplayOf(retry, first);
    expect(retry.headers.location).toBe(`/payments/${(first.body as PaymentView).id}`);
    expect(await paymentRows(reference)).toBe(1);
  });

  it('stores a card decline (402) and replays it, with no payment', async () => {
    const reference = newReference('declined');
    const key = randomUUID();
    const body = { amount: 1_000_001, currency: 'EUR', reference };
    const first = await pay(key, body);

    expect(first.status).toBe(402);
    expect(first.headers['content-type']).toMatch(JSON_TYPE);
    expect(first.body).toEqual({ error: 'card_declined' });
    expect(first.headers['idempotent-replayed']).toBeUndefined();

    const retry = await pay(key, body);
    expectReplayOf(retry, first);
    expect(retry.body).toEqual({ error: 'card_declined' });
    expect(await paymentRows(reference)).toBe(0);
  });

  it('accepts the card limit itself (1000000)', async () => {
    const reference = newReference('limit');
    const response = await pay(randomUUID(), { amount: 1_000_000, currency: 'EUR', reference });
    expect(response.status).toBe(201);
    expect(await paymentRows(reference)).toBe(1);
  });

  it.each<[string, PaymentBody, RegExp]>([
    ['amount 0', { amount: 0, currency: 'EUR' }, /amount/],
    ['a fractional amount', { amount: 1.5, currency: 'EUR' }, /amount/],
    ['an amount as a string', { amount: '10', currency: 'EUR' }, /amount/],
    ['a negative amount', { amount: -5, currency: 'EUR' }, /amount/],
    ['a lower-case currency', { amount: 10, currency: 'eur' }, /currency/],
    ['a four-letter currency', { amount: 10, currency: 'EURO' }, /currency/],
    ['no amount', { currency: 'EUR' }, /amount/],
    ['no currency', { amount: 10 }, /currency/],
    ['a non-string reference', { amount: 10, currency: 'EUR', reference: 42 }, /reference/],
  ])('rejects %s with 400, and no payment', async (_, body, complaint) => {
    // Counted over the whole table: an invalid body has no usable reference to count by.
    const before = await allPayments();
    const response = await pay(randomUUID(), body);

    expect(response.status).toBe(400);
    expect(response.headers['content-type']).toMatch(JSON_TYPE);
    const messages = (response.body as { message: string[] }).message;
    expect(messages.some((message) => complaint.test(message))).toBe(true);
    expect(await allPayments()).toBe(before);
  });

  it('rejects an empty body with 400', async () => {
    const response = await app.http().post('/payments').set('Idempotency-Key', randomUUID());
    expect(response.status).toBe(400);
  });

  it('answers 422 when a key is reused with another amount, and pays once', async () => {
    const reference = newReference('mismatch');
    const key = randomUUID();
    const first = await pay(key, { amount: 10, currency: 'EUR', reference });
    const other = await pay(key, { amount: 11, currency: 'EUR', reference });

    expect(first.status).toBe(201);
    expect(other.status).toBe(422);
    expect(other.headers['content-type']).toMatch(PROBLEM);
    expect(await paymentRows(reference)).toBe(1);
  });

  it('creates exactly one payment under 30 parallel requests with one key', async () => {
    const reference = newReference('burst');
    const key = randomUUID();
    const body = { amount: 999, currency: 'EUR', reference };
    const responses = await Promise.all(Array.from({ length: 30 }, () => pay(key, body)));

    expect(await paymentRows(reference)).toBe(1);
    for (const response of responses) {
      expect([201, 409]).toContain(response.status);
    }
    const successes = responses.filter((response) => response.status === 201);
    expect(successes.length).toBeGreaterThanOrEqual(1);
    // Every 201 is the one payment: the same bytes and the same Location.
    expect(new Set(successes.map((response) => response.text)).size).toBe(1);
    expect(new Set(successes.map((response) => response.headers.location)).size).toBe(1);
    const conflicts = responses.filter((response) => response.status === 409);
    for (const conflict of conflicts) {
      expect(conflict.headers['content-type']).toMatch(PROBLEM);
      expect(conflict.headers['retry-after']).toMatch(/^\d+$/);
    }
  });

  it('keeps clients apart: one key, three clients, three payments, each listing only its own', async () => {
    const reference = newReference('scopes');
    const key = randomUUID();
    const aliceBody = { amount: 700, currency: 'EUR', reference };
    // Bob sends another body: a shared scope would answer him 422; alice's body again for the
    // anonymous client: a shared scope would replay alice's payment to it.
    const alice = await pay(key, aliceBody, 'alice');
    const bob = await pay(key, { amount: 800, currency: 'EUR', reference }, 'bob');
    const anonymous = await pay(key, aliceBody);

    for (const response of [alice, bob, anonymous]) {
      expect(response.status).toBe(201);
      expect(response.headers['idempotent-replayed']).toBeUndefined();
    }
    const [alicePayment, bobPayment, anonymousPayment] = [alice, bob, anonymous].map(
      (response) => response.body as PaymentView,
    );
    expect(bobPayment.amount).toBe(800);
    expect(new Set([alicePayment.id, bobPayment.id, anonymousPayment.id]).size).toBe(3);
    expect(await paymentRows(reference)).toBe(3);

    // Each client's retry replays its own payment, never another's.
    expectReplayOf(await pay(key, aliceBody, 'alice'), alice);
    expectReplayOf(await pay(key, { amount: 800, currency: 'EUR', reference }, 'bob'), bob);
    expectReplayOf(await pay(key, aliceBody), anonymous);
    expect(await paymentRows(reference)).toBe(3);

    const listed = await Promise.all([
      list(reference, 'alice'),
      list(reference, 'bob'),
      list(reference),
    ]);
    for (const response of listed) {
      expect(response.status).toBe(200);
      expect(response.headers['content-type']).toMatch(JSON_TYPE);
    }
    expect(listed.map((response) => response.body as PaymentView[])).toEqual([
      [alicePayment],
      [bobPayment],
      [anonymousPayment],
    ]);
    expect((await list(reference, 'carol')).body).toEqual([]);
  });

  it('lists a client’s payments with one reference in creation order', async () => {
    const reference = newReference('list');
    const first = await pay(randomUUID(), { amount: 1, currency: 'EUR', reference }, 'dave');
    const second = await pay(randomUUID(), { amount: 2, currency: 'EUR', reference }, 'dave');
    await pay(
      randomUUID(),
      { amount: 3, currency: 'EUR', reference: `${reference}-other` },
      'dave',
    );

    const response = await list(reference, 'dave');
    expect(response.status).toBe(200);
    expect(response.body).toEqual([first.body, second.body]);
  });
});

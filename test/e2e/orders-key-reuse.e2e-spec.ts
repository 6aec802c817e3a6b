import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { AppModule } from '../../sample-app/app.module';
import { readConfig } from '../../sample-app/config';
import { createPaymentProvider } from '../../sample-app/payment-provider/payment-provider.factory';
import { ADAPTERS, type TestApp, createTestApp } from '../utils/test-app';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';

/*
 * An order key sent again after it expired (its TTL) is a new request to the module. The same
 * request (same body) gets its order back, neither reserving nor charging again: its step keys
 * are the same, and each step finds what it wrote. Another body gets new step keys and a new
 * order. The provider, whose charges outlive its keys' records, refuses a key it charged for
 * another request.
 */

const TTL_MS = 1000;
const ORDER = { sku: 'widget', quantity: 1 };

describe.each(ADAPTERS)('orders: a key sent again after its TTL (%s)', (adapter) => {
  let appDb: TestDatabase;
  let providerDb: TestDatabase;
  let provider: INestApplication;
  let providerUrl: string;
  let app: TestApp;

  beforeAll(async () => {
    [appDb, providerDb] = await Promise.all([createTestDatabase(), createTestDatabase()]);
    provider = await createPaymentProvider(
      {
        databaseUrl: providerDb.url,
        idempotencyLockTimeoutMs: 5000,
        idempotencyTtlMs: TTL_MS,
        testHooks: false,
      },
      { logger: false },
    );
    await provider.listen(0, '127.0.0.1');
    providerUrl = await provider.getUrl();
    const config = readConfig({
      IDEMPOTENCY_TTL_MS: String(TTL_MS),
      PAYMENT_PROVIDER_URL: providerUrl.replace('[::1]', '127.0.0.1'),
    });
    app = await createTestApp(adapter, AppModule.register({ ...config, databaseUrl: appDb.url }));
  });

  afterAll(async () => {
    await app?.close();
    await provider?.close();
    await Promise.all([appDb?.drop(), providerDb?.drop()]);
  });

  const order = (key: string, body: object) =>
    app.http().post('/orders').set('Idempotency-Key', key).send(body);
  const count = async (db: TestDatabase, table: string) =>
    Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`))[0].n);
  const afterTtl = () => new Promise((resolve) => setTimeout(resolve, TTL_MS + 300));

  it('answers the same request with its order, without reserving or charging again', async () => {
    const key = `same-body-${adapter}`;
    const first = await order(key, ORDER);
    expect(first.status).toBe(201);
    const before = await Promise.all([
      count(appDb, 'stock_reservations'),
      count(appDb, 'shipments'),
      count(providerDb, 'charges'),
    ]);
    await afterTtl();
    const again = await order(key, ORDER);
    expect(again.status).toBe(201);
    expect(again.headers['idempotent-replayed']).toBeUndefined();
    expect(again.body).toEqual(first.body);
    expect(
      await Promise.all([
        count(appDb, 'stock_reservations'),
        count(appDb, 'shipments'),
        count(providerDb, 'charges'),
      ]),
    ).toEqual(before);
  });

  it('makes a new order for another body', async () => {
    const key = `other-body-${adapter}`;
    const first = await order(key, ORDER);
    expect(first.status).toBe(201);
    await afterTtl();
    const other = await order(key, { ...ORDER, quantity: 2 });
    expect(other.status).toBe(201);
    expect(other.body.id).not.toBe(first.body.id);
    expect(other.body.chargeId).not.toBe(first.body.chargeId);
  });

  it('provider: refuses a key it charged for another request once the key’s record expired', async () => {
    const charge = { amount: 100, currency: 'EUR', card: 'tok_visa', reference: `ref-${adapter}` };
    const key = `provider-${adapter}`;
    const first = await request(providerUrl)
      .post('/charges')
      .set('Idempotency-Key', key)
      .send(charge);
    expect(first.status).toBe(201);
    await afterTtl();
    const other = await request(providerUrl)
      .post('/charges')
      .set('Idempotency-Key', key)
      .send({ ...charge, amount: 99_999 });
    expect(other.status).toBe(422);
    const charges = await providerDb.query('SELECT 1 FROM charges WHERE idempotency_key = $1', [
      key,
    ]);
    expect(charges).toHaveLength(1);
  });
});

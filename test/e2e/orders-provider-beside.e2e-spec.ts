import { randomUUID } from 'node:crypto';
import pg from 'pg';
import request from 'supertest';
import { PROVIDER_DATABASE } from '../../sample-app/payment-provider/database/provider-database';
import { type SampleAppProcess, startSampleAppProcess } from '../utils/sample-app-process';
import { ADAPTERS } from '../utils/test-app';
import { type TestDatabase, createTestDatabase, serverUrl } from '../utils/test-database';

/*
 * With PAYMENT_PROVIDER_URL unset (as with `npm start`), the sample app starts the payment
 * provider in its own process, on a database of its own on the same server: POST /orders works
 * with nothing set up.
 */

const TEST_TIMEOUT_MS = 60_000;

describe.each(ADAPTERS)('POST /orders with the payment provider in-process (%s)', (adapter) => {
  let db: TestDatabase;
  let app: SampleAppProcess | undefined;

  beforeAll(async () => {
    db = await createTestDatabase();
    app = await startSampleAppProcess({
      env: { DATABASE_URL: db.url, HTTP_ADAPTER: adapter, PAYMENT_PROVIDER_URL: '' },
      readyTimeoutMs: TEST_TIMEOUT_MS,
    });
  }, TEST_TIMEOUT_MS);

  afterAll(async () => {
    await app?.kill();
    await db?.drop();
  });

  it('orders a seeded product, charged in the provider database', async () => {
    const placed = await request(app!.url)
      .post('/orders')
      .set('Idempotency-Key', randomUUID())
      .send({ sku: 'widget', quantity: 2 });
    expect(placed.status).toBe(201);
    expect(placed.body).toMatchObject({
      sku: 'widget',
      quantity: 2,
      amount: 3000,
      currency: 'EUR',
    });

    const url = new URL(serverUrl());
    url.pathname = `/${PROVIDER_DATABASE}`;
    const provider = new pg.Client({ connectionString: url.toString() });
    await provider.connect();
    try {
      const { rows } = await provider.query('SELECT id, reference FROM charges WHERE id = $1', [
        (placed.body as { chargeId: string }).chargeId,
      ]);
      expect(rows).toEqual([{ id: placed.body.chargeId, reference: placed.body.id }]);
    } finally {
      await provider.end();
    }
  });
});

import request from 'supertest';
import { freePort } from '../../sample-app/database/free-port';
import {
  INITIAL_STOCK,
  expectOrderedOnce,
  expectReplaysOf,
  newOrderCase,
  orderRows,
  placeOrder,
  retryUntilSettled,
  setCard,
  stockUp,
} from '../utils/orders-flow';
import { useOrdersServices } from '../utils/orders-services';
import { ADAPTERS } from '../utils/test-app';
import { waitFor } from '../utils/wait-for';

/*
 * POST /orders when the payment provider (a real process with its own database) declines, is too
 * slow, fails, is down or crashes after charging; and 30 duplicates of one order at once.
 */

const LEASE_MS = 3000;
/**
 * How long the sample app waits for a charge: long, so that a loaded machine does not turn an
 * answer into a 503 in tests whose subject is that answer.
 */
const PROVIDER_TIMEOUT_MS = 5000;
/** The timeout of the one app whose subject is the timeout: short, the test waits it out. */
const SHORT_PROVIDER_TIMEOUT_MS = 1000;
const TEST_TIMEOUT_MS = 60_000;
const UNAVAILABLE = { error: 'payment_provider_unavailable' };

describe.each(ADAPTERS)('POST /orders: payment provider failures (%s)', (adapter) => {
  const services = useOrdersServices(adapter, {
    lockTimeoutMs: LEASE_MS,
    providerTimeoutMs: PROVIDER_TIMEOUT_MS,
  });

  it('declined: a stored 402, the stock put back, no charge, no shipment', async () => {
    const order = newOrderCase(`declined-${adapter}`, 'tok_declined');
    await stockUp(services, order);

    const first = await placeOrder(services.app(), order);
    expect(first.status).toBe(402);
    const rows = await orderRows(services, order);
    expect(first.body).toEqual({ error: 'card_declined', orderId: rows.reservations[0].id });
    expect(rows.reservations).toEqual([{ id: expect.any(String), released: true }]);
    expect(rows.available).toBe(INITIAL_STOCK);
    expect(rows.shipments).toEqual([]);
    const charges = await services
      .providerDb()
      .query('SELECT 1 FROM charges WHERE reference = $1', [rows.reservations[0].id]);
    expect(charges).toEqual([]);

    expectReplaysOf(first, [await placeOrder(services.app(), order)]);
    expect(await orderRows(services, order)).toEqual(rows);
  });

  it(
    'timeout: a 503, and the retry resumes with the same charge key, which the provider dedupes',
    async () => {
      const order = newOrderCase(`timeout-${adapter}`);
      await stockUp(services, order);
      const app = await services.startApp({ providerTimeoutMs: SHORT_PROVIDER_TIMEOUT_MS });
      await setCard(services.provider(), order.card, {
        slowNext: 1,
        delayMs: 2 * SHORT_PROVIDER_TIMEOUT_MS,
      });

      const first = await placeOrder(app, order);
      expect(first.status).toBe(503);
      expect(first.body).toEqual(UNAVAILABLE);
      // The provider charges anyway, once its delay is over: the app never learnt of it.
      await waitFor(async () => (await orderRows(services, order)).charges.length === 1);

      const { settled } = await retryUntilSettled(() => placeOrder(app, order));
      await expectOrderedOnce(services, order, settled);
      expectReplaysOf(settled, [await placeOrder(app, order)]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'the provider answers 503: a 503 for each, then the order, charged once',
    async () => {
      const order = newOrderCase(`failing-${adapter}`);
      await stockUp(services, order);
      await setCard(services.provider(), order.card, { failNext: 2 });

      for (let attempt = 0; attempt < 2; attempt++) {
        const failed = await placeOrder(services.app(), order);
        expect(failed.status).toBe(503);
        expect(failed.body).toEqual(UNAVAILABLE);
      }
      const rows = await orderRows(services, order);
      expect(rows.reservations).toHaveLength(1);
      expect(rows.charges).toEqual([]);

      const { settled } = await retryUntilSettled(() => placeOrder(services.app(), order));
      await expectOrderedOnce(services, order, settled);
      expectReplaysOf(settled, [await placeOrder(services.app(), order)]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'the provider down, then back: 503, and the retry resumes',
    async () => {
      const order = newOrderCase(`down-${adapter}`);
      await stockUp(services, order);
      const port = await freePort();
      const app = await services.startApp({ providerUrl: `http://127.0.0.1:${port}` });

      const down = await placeOrder(app, order);
      expect(down.status).toBe(503);
      expect(down.body).toEqual(UNAVAILABLE);
      expect((await orderRows(services, order)).reservations).toHaveLength(1);

      await services.startProvider(port);
      const { settled } = await retryUntilSettled(() => placeOrder(app, order));
      await expectOrderedOnce(services, order, settled);
      expectReplaysOf(settled, [await placeOrder(app, order)]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'the provider crashes after charging: once back, it answers the retry with that charge',
    async () => {
      const order = newOrderCase(`provider-crash-${adapter}`);
      await stockUp(services, order);
      const port = await freePort();
      const provider = await services.startProvider(port);
      const app = await services.startApp({ providerUrl: provider.url });
      await setCard(provider, order.card, { crashNext: 1 });

      const lost = await placeOrder(app, order);
      expect(lost.status).toBe(503);
      expect(await provider.exited).toEqual({ code: null, signal: 'SIGKILL' });
      const charged = (await orderRows(services, order)).charges;
      expect(charged).toHaveLength(1);

      // Its key stays in flight for the provider's lease, then its retry finds the charge.
      await services.startProvider(port);
      const { settled } = await retryUntilSettled(() => placeOrder(app, order));
      await expectOrderedOnce(services, order, settled);
      expect((settled.body as { chargeId: string }).chargeId).toBe(charged[0].id);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    '30 duplicates at once: one flow, and every one of them ends with its answer',
    async () => {
      const order = newOrderCase(`duplicates-${adapter}`);
      await stockUp(services, order);
      // A slow charge, so that the duplicates arrive while the first one runs.
      await setCard(services.provider(), order.card, { slowNext: 1, delayMs: 300 });

      const answers = await Promise.all(
        Array.from({ length: 30 }, () =>
          retryUntilSettled(() => placeOrder(services.app(), order)).then(({ settled }) => settled),
        ),
      );
      const firsts = answers.filter((answer) => answer.headers['idempotent-replayed'] !== 'true');
      expect(firsts).toHaveLength(1);
      await expectOrderedOnce(services, order, firsts[0]);
      expectReplaysOf(
        firsts[0],
        answers.filter((answer) => answer !== firsts[0]),
      );
    },
    TEST_TIMEOUT_MS,
  );

  it('the provider lists the charges of a reference', async () => {
    const order = newOrderCase(`listing-${adapter}`);
    await stockUp(services, order);
    const placed = await placeOrder(services.app(), order);
    expect(placed.status).toBe(201);
    const { id, chargeId } = placed.body as { id: string; chargeId: string };
    const listed = await request(services.provider().url).get('/charges').query({ reference: id });
    expect(listed.status).toBe(200);
    expect(listed.body).toEqual([
      expect.objectContaining({
        id: chargeId,
        reference: id,
        card: order.card,
        status: 'succeeded',
      }),
    ]);
  });
});

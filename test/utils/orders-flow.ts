import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import request, { type Response } from 'supertest';
import type { CardBehaviour } from '../../sample-app/payment-provider/control/card-behaviour';
import type { OrdersServices } from './orders-services';
import type { SampleAppProcess } from './sample-app-process';

/** Price of each test product, in cents. */
export const UNIT_PRICE = 250;
/** Stock of each test product before its test. */
export const INITIAL_STOCK = 100;

/**
 * One test's own order: its key, and a product and a card of its own, so that tests running
 * side by side on one pair of services count only their own rows.
 */
export interface OrderCase {
  key: string;
  sku: string;
  card: string;
  quantity: number;
}

export function newOrderCase(label: string, card?: string): OrderCase {
  const id = randomUUID().slice(0, 8);
  return { key: randomUUID(), sku: `${label}-${id}`, card: card ?? `${label}-${id}`, quantity: 3 };
}

/** Puts the case's product in stock, at {@link UNIT_PRICE}, {@link INITIAL_STOCK} of it. */
export async function stockUp(services: OrdersServices, order: OrderCase): Promise<void> {
  await services
    .appDb()
    .query(
      'INSERT INTO stock_items (sku, unit_price, currency, available) VALUES ($1, $2, $3, $4)',
      [order.sku, UNIT_PRICE, 'EUR', INITIAL_STOCK],
    );
}

/** Tells the provider how the next charges with `card` behave. */
export async function setCard(
  provider: SampleAppProcess,
  card: string,
  behaviour: Partial<CardBehaviour>,
): Promise<void> {
  const answer = await request(provider.url).put(`/control/cards/${card}`).send(behaviour);
  expect(answer.status).toBe(200);
}

/** `POST /orders` with the case's key and body. */
export function placeOrder(app: SampleAppProcess, order: OrderCase): Promise<Response> {
  return request(app.url)
    .post('/orders')
    .set('Idempotency-Key', order.key)
    .send({ sku: order.sku, quantity: order.quantity, card: order.card });
}

/** Statuses that say "not yet": the key is held (409) or a service was unavailable (503). */
const TRANSIENT = new Set([409, 503]);

/**
 * Sends `send` until it answers something other than 409 or 503, as a client with a retry
 * policy would; throws after `timeoutMs`. Resolves to that answer and the statuses before it.
 */
export async function retryUntilSettled(
  send: () => Promise<Response>,
  timeoutMs = 30_000,
): Promise<{ settled: Response; before: number[] }> {
  const deadline = Date.now() + timeoutMs;
  const before: number[] = [];
  for (;;) {
    const answer = await send();
    if (!TRANSIENT.has(answer.status)) {
      return { settled: answer, before };
    }
    before.push(answer.status);
    if (Date.now() > deadline) {
      throw new Error(`still ${answer.status} after ${timeoutMs} ms: ${answer.text}`);
    }
    await sleep(150);
  }
}

/** What the two databases hold for a case: each count is what "exactly once" is checked on. */
export interface OrderRows {
  /** The provider's charges with the case's card. */
  charges: { id: string; reference: string }[];
  /** The app's reservations of the case's product. */
  reservations: { id: string; released: boolean }[];
  /** The product's stock left. */
  available: number;
  /** Shipments of the case's orders. */
  shipments: { id: string; order_id: string; charge_id: string }[];
}

export async function orderRows(services: OrdersServices, order: OrderCase): Promise<OrderRows> {
  const app = services.appDb();
  const [charges, reservations, stock, shipments] = await Promise.all([
    services
      .providerDb()
      .query<{ id: string; reference: string }>(
        'SELECT id, reference FROM charges WHERE card = $1',
        [order.card],
      ),
    app.query<{ id: string; released: boolean }>(
      'SELECT id, released_at IS NOT NULL AS released FROM stock_reservations WHERE sku = $1',
      [order.sku],
    ),
    app.query<{ available: number }>('SELECT available FROM stock_items WHERE sku = $1', [
      order.sku,
    ]),
    app.query<{ id: string; order_id: string; charge_id: string }>(
      `SELECT s.id, s.order_id, s.charge_id FROM shipments s
       JOIN stock_reservations r ON r.id = s.order_id WHERE r.sku = $1`,
      [order.sku],
    ),
  ]);
  return { charges, reservations, available: stock[0].available, shipments };
}

/**
 * Checks that the case's order went through exactly once: one charge, one reservation, its
 * stock taken once, one shipment, all of one order, and `answer` is that order.
 */
export async function expectOrderedOnce(
  services: OrdersServices,
  order: OrderCase,
  answer: Response,
): Promise<void> {
  const rows = await orderRows(services, order);
  expect(rows.charges).toHaveLength(1);
  expect(rows.reservations).toEqual([{ id: expect.any(String), released: false }]);
  expect(rows.available).toBe(INITIAL_STOCK - order.quantity);
  expect(rows.shipments).toHaveLength(1);
  const orderId = rows.reservations[0].id;
  expect(rows.charges[0].reference).toBe(orderId);
  expect(rows.shipments[0]).toMatchObject({ order_id: orderId, charge_id: rows.charges[0].id });
  expect(answer.status).toBe(201);
  expect(answer.body).toEqual({
    id: orderId,
    sku: order.sku,
    quantity: order.quantity,
    amount: UNIT_PRICE * order.quantity,
    currency: 'EUR',
    chargeId: rows.charges[0].id,
    shipmentId: rows.shipments[0].id,
    status: 'confirmed',
  });
}

/** Checks that `retries` are replays of `first`: the same status and the same bytes. */
export function expectReplaysOf(first: Response, retries: Response[]): void {
  for (const retry of retries) {
    expect(retry.status).toBe(first.status);
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(retry.headers['content-type']).toBe(first.headers['content-type']);
    expect(retry.text).toBe(first.text);
  }
}

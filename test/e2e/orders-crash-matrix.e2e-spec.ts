import { ORDERS_CRASH_POINTS, type OrdersCrashPoint } from '../../sample-app/config';
import {
  type OrderCase,
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
import type { SampleAppProcess } from '../utils/sample-app-process';
import { ADAPTERS } from '../utils/test-app';
import { waitFor } from '../utils/wait-for';

/*
 * POST /orders across two real processes and two databases: the sample app (reserve stock, charge
 * at the provider with the charge step's key, ship) and the payment provider. At each boundary of
 * the flow, a sample app is killed with SIGKILL (ORDERS_CRASH_AT); a retry to another one must
 * finish the order, and the provider charge once, the stock be taken once, one shipment be made.
 */

/** The lease of both services' keys: a retry after a crash waits this long at most. */
const LEASE_MS = 3000;
/**
 * How long a slow charge takes at the provider: longer than the app waits to crash (200 ms after
 * sending it), and short enough that the charge is in well before the dead app's lease ends.
 */
const SLOW_CHARGE_MS = 1000;
/** How long the test waits for the provider to commit a charge sent by the app it killed. */
const CHARGE_COMMIT_TIMEOUT_MS = 10_000;
const TEST_TIMEOUT_MS = 60_000;

/**
 * What the crash left behind, before any retry, for each point: rows in the two databases, and
 * the steps recorded on the order's key (which tell the two points after the charge apart).
 * 'during-charge' is read once the provider committed the charge that the app sent before dying.
 */
const LEFT_BEHIND: Record<
  OrdersCrashPoint,
  { reserved: number; charged: number; shipped: number; steps: string[] }
> = {
  'before-first-step': { reserved: 0, charged: 0, shipped: 0, steps: [] },
  // The provider had not answered: it charged later, on its own (SLOW_CHARGE_MS), unrecorded.
  'during-charge': { reserved: 1, charged: 1, shipped: 0, steps: ['reserve'] },
  'after-charge': { reserved: 1, charged: 1, shipped: 0, steps: ['reserve'] },
  'after-recovery-point': { reserved: 1, charged: 1, shipped: 0, steps: ['reserve', 'charge'] },
  'before-response': { reserved: 1, charged: 1, shipped: 1, steps: ['reserve', 'charge', 'ship'] },
};

describe.each(ADAPTERS)('POST /orders: a real SIGKILL at each boundary (%s)', (adapter) => {
  const services = useOrdersServices(adapter, { lockTimeoutMs: LEASE_MS, providerTimeoutMs: 5000 });
  const doomed = new Map<OrdersCrashPoint, SampleAppProcess>();

  const leftBehind = async (order: OrderCase) => {
    const rows = await orderRows(services, order);
    // The PostgreSQL store keeps `{ claim, list }`: the list counts while its claim holds the row.
    const [record] = await services.appDb().query<{ steps: { name: string }[] | null }>(
      `SELECT CASE WHEN steps ->> 'claim' = lock_token::text THEN steps -> 'list' END AS steps
         FROM idempotency_records WHERE key = $1`,
      [order.key],
    );
    return {
      reserved: rows.reservations.length,
      charged: rows.charges.length,
      shipped: rows.shipments.length,
      steps: (record?.steps ?? []).map((step) => step.name),
    };
  };

  beforeAll(async () => {
    // One app per crash point, each dying at its point on its first order; side by side, since
    // the services' own boot ran the migrations.
    const started = await Promise.all(
      ORDERS_CRASH_POINTS.map((crashAt) => services.startApp({ crashAt })),
    );
    ORDERS_CRASH_POINTS.forEach((point, index) => doomed.set(point, started[index]));
  }, TEST_TIMEOUT_MS);

  it.each(ORDERS_CRASH_POINTS)(
    'killed %s: the retry finishes the order, charged, reserved and shipped once',
    async (point) => {
      const order = newOrderCase(`${point}-${adapter}`);
      await stockUp(services, order);
      if (point === 'during-charge') {
        await setCard(services.provider(), order.card, { slowNext: 1, delayMs: SLOW_CHARGE_MS });
      }
      const app = doomed.get(point)!;

      const lost = await placeOrder(app, order).then(
        (answer) => `answered ${answer.status}`,
        () => 'connection lost',
      );
      expect(lost).toBe('connection lost');
      expect(await app.exited).toEqual({ code: null, signal: 'SIGKILL' });
      if (point === 'during-charge') {
        // The charge reached the provider before the app died: slowed down, the provider commits
        // it afterwards, with no retry sent yet. (A charge never sent never shows up here.)
        await waitFor(
          async () => (await orderRows(services, order)).charges.length > 0,
          CHARGE_COMMIT_TIMEOUT_MS,
        );
      }
      expect(await leftBehind(order)).toEqual(LEFT_BEHIND[point]);
      const chargedBeforeRetry = (await orderRows(services, order)).charges;
      expect(chargedBeforeRetry).toHaveLength(LEFT_BEHIND[point].charged);

      // The retries go to the app that lives on: 409 while the dead app's lease lasts.
      const { settled, before } = await retryUntilSettled(() => placeOrder(services.app(), order));
      // The dead app claimed the key (the handler runs under it) and held it till its lease ended.
      expect(before).toContain(409);
      expect(settled.headers['idempotent-replayed']).toBeUndefined();
      await expectOrderedOnce(services, order, settled);
      if (chargedBeforeRetry.length > 0) {
        // The retry resumed with the charge the dead app had made, not a new one.
        expect((settled.body as { chargeId: string }).chargeId).toBe(chargedBeforeRetry[0].id);
      }

      const retries = await Promise.all([
        placeOrder(services.app(), order),
        placeOrder(services.app(), order),
      ]);
      expectReplaysOf(settled, retries);
      await expectOrderedOnce(services, order, settled);
    },
    TEST_TIMEOUT_MS,
  );
});

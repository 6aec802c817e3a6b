import {
  Body,
  Controller,
  HttpException,
  HttpStatus,
  Module,
  Post,
  type DynamicModule,
} from '@nestjs/common';
import {
  IdempotencyModule,
  type IdempotencyModuleForRootOptions,
  IdempotencySteps,
  Idempotent,
  PROBLEM_CONTENT_TYPE,
} from '../../lib';
import {
  createIdempotencyTableSql,
  createPartitionedIdempotencyTableSql,
  pgPoolStore,
} from '../../lib/postgres/pool';
import { InMemoryIdempotencyStore } from '../../lib/testing';
import { ADAPTERS, type TestApp, createTestApp } from '../utils/test-app';
import { redisStore } from '../../lib/redis';
import { redisBinaries, startRedisServer } from '../utils/redis-servers';
import { createTestDatabase } from '../utils/test-database';

/*
 * Recovery points over real HTTP, on both platforms, with each store that keeps them (in memory;
 * PostgreSQL, an ordinary and a partitioned table; Redis): a handler that reserves stock, charges a provider with its step's key, then ships.
 * The provider charges once per key it is given, as a real one would.
 */

const SECRET = 'a test secret of at least thirty-two bytes';
const LEASE_MS = 10_000;
const SHORT_LEASE_MS = 400;

/** What the handler's steps did, and what the next request makes them do: as each test starts. */
function freshWorld() {
  return {
    reserved: 0,
    shipped: 0,
    /** The provider's charges, by the Idempotency-Key it was given. */
    charges: new Map<string, number>(),
    chargeCalls: 0,
    /** Set by a test: how the next charge or shipment behaves. */
    chargeFails: undefined as 'declined' | 'after-charging' | undefined,
    shipFails: false,
    /** Set: the handler stops after charging and waits for it (a process that hangs, or died). */
    hangAfterCharge: undefined as Promise<void> | undefined,
    /** Whether a handler is waiting for `hangAfterCharge` (its charge recorded). */
    hanging: false,
    swapOrder: false,
    hugeShipment: false,
    /** How long each step of the flow takes. */
    stepDelayMs: 0,
    /** Runs of step 'a' of the parallel route: how many, and most at once. */
    aRuns: 0,
    aRunning: 0,
    aMostAtOnce: 0,
  };
}

const world = freshWorld();

function resetWorld(): void {
  Object.assign(world, freshWorld());
}

/** The provider: charges once per key; a retry with the key gets the same charge. */
function charge(stepKey: string, amount: number): { chargeId: number; amount: number } {
  world.chargeCalls++;
  if (world.chargeFails === 'declined') {
    throw new HttpException({ message: 'card declined' }, HttpStatus.PAYMENT_REQUIRED);
  }
  if (!world.charges.has(stepKey)) {
    world.charges.set(stepKey, world.charges.size + 1);
  }
  if (world.chargeFails === 'after-charging') {
    world.chargeFails = undefined;
    throw new Error('the provider charged, then the connection dropped');
  }
  return { chargeId: world.charges.get(stepKey)!, amount };
}

@Controller('orders')
class OrdersController {
  constructor(private readonly steps: IdempotencySteps) {}

  @Post()
  @Idempotent({ lockTimeoutMs: LEASE_MS })
  create(@Body() order: { amount: number }) {
    return this.flow(order);
  }

  /** The same flow with a lease short enough to end during a test. */
  @Post('short-lease')
  @Idempotent({ lockTimeoutMs: SHORT_LEASE_MS })
  createWithShortLease(@Body() order: { amount: number }) {
    return this.flow(order);
  }

  /** Two steps asked for at once: the second is refused while the first runs. */
  @Post('parallel-steps')
  @Idempotent()
  async parallelSteps() {
    const [a, b] = await Promise.all([
      this.steps.run('a', async () => {
        world.aRuns++;
        world.aMostAtOnce = Math.max(world.aMostAtOnce, ++world.aRunning);
        await sleep(200);
        world.aRunning--;
        return 'a';
      }),
      this.steps.run('b', () => 'b'),
    ]);
    return { a, b };
  }

  /** A step refused for its result, which the handler catches and answers in its own way. */
  @Post('swallowed')
  @Idempotent()
  async swallowed() {
    try {
      await this.steps.run('huge', () => 'x'.repeat(4096));
    } catch {
      return { swallowed: true };
    }
  }

  /** Steps on a route that does not fingerprint its requests. */
  @Post('unfingerprinted')
  @Idempotent({ fingerprint: { enabled: false } })
  async unfingerprinted() {
    return this.steps.run('charge', () => {
      world.chargeCalls++;
      return 'charged';
    });
  }

  private async flow(order: { amount: number }) {
    // Read as the request starts: the test clears it for the requests after this one.
    const hang = world.hangAfterCharge;
    const reserve = () =>
      this.steps.run('reserve', async () => {
        await sleep(world.stepDelayMs);
        return { reservation: ++world.reserved };
      });
    const first = world.swapOrder ? 'charge' : 'reserve';
    let reservation: { reservation: number };
    let payment: { chargeId: number; amount: number; stepKey?: string };
    if (first === 'reserve') {
      reservation = await reserve();
      payment = await this.steps.run('charge', async (stepKey) => {
        await sleep(world.stepDelayMs);
        return { ...charge(stepKey, order.amount), stepKey };
      });
    } else {
      payment = await this.steps.run('charge', (stepKey) => charge(stepKey, order.amount));
      reservation = await reserve();
    }
    if (hang) {
      world.hanging = true;
      await hang;
    }
    const shipment = await this.steps.run('ship', async () => {
      await sleep(world.stepDelayMs);
      if (world.shipFails) {
        world.shipFails = false;
        throw new Error('the shipping service is down');
      }
      world.shipped++;
      return world.hugeShipment ? 'x'.repeat(4096) : { shipment: world.shipped };
    });
    return { ...reservation, chargeId: payment.chargeId, stepKey: payment.stepKey, shipment };
  }
}

@Module({})
class StepsAppModule {
  static with(store: IdempotencyModuleForRootOptions['store']): DynamicModule {
    return {
      module: StepsAppModule,
      imports: [
        IdempotencyModule.forRoot({ store, steps: { keySecret: SECRET, maxResultBytes: 1024 } }),
      ],
      controllers: [OrdersController],
    };
  }
}

/** A store that keeps recovery points, and how to remove what it was made on. */
interface MadeStore {
  store: IdempotencyModuleForRootOptions['store'];
  cleanup(): Promise<void>;
}

/** The stores that keep recovery points, each on a database or server of its own. */
const STORES: Record<string, () => Promise<MadeStore>> = {
  'in-memory': () =>
    Promise.resolve({ store: new InMemoryIdempotencyStore(), cleanup: () => Promise.resolve() }),
  postgres: async () => {
    const db = await createTestDatabase();
    await db.query(createIdempotencyTableSql());
    return { store: pgPoolStore({ connection: db.url }), cleanup: () => db.drop() };
  },
  'postgres, partitioned': async () => {
    const db = await createTestDatabase();
    await db.query(createPartitionedIdempotencyTableSql());
    return {
      store: pgPoolStore({ connection: db.url, partitioning: {} }),
      cleanup: () => db.drop(),
    };
  },
};
// Where redis-server is installed (the Redis suites report, and fail under CI, where it is not).
if (redisBinaries()) {
  STORES.redis = async () => {
    const server = await startRedisServer();
    return {
      store: redisStore({ redis: { host: '127.0.0.1', port: server.port } }),
      cleanup: () => server.stop(),
    };
  };
}

describe.each(
  Object.keys(STORES).flatMap((store) => ADAPTERS.map((adapter) => [store, adapter] as const)),
)('recovery points (%s, %s)', (storeName, adapter) => {
  let app: TestApp;
  let made: MadeStore | undefined;

  beforeAll(async () => {
    made = await STORES[storeName]();
    app = await createTestApp(adapter, StepsAppModule.with(made.store));
  });
  afterAll(async () => {
    await app?.close();
    await made?.cleanup();
  });
  beforeEach(() => {
    resetWorld();
  });

  const order = (key: string, path = '/orders') =>
    app.http().post(path).set('Idempotency-Key', key).send({ amount: 100 });

  it('runs each step once; a replay runs none', async () => {
    const first = await order(`once-${adapter}`);
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ reservation: 1, chargeId: 1, shipment: { shipment: 1 } });
    const replay = await order(`once-${adapter}`);
    expect(replay.status).toBe(201);
    expect(replay.body).toEqual(first.body);
    expect([world.reserved, world.chargeCalls, world.shipped]).toEqual([1, 1, 1]);
  });

  it('gives each step a key of its own, the same on every attempt and unlike the client’s', async () => {
    world.shipFails = true;
    const key = `derived-${adapter}`;
    expect((await order(key)).status).toBe(500);
    const retried = await order(key);
    expect(retried.status).toBe(201);
    expect(retried.body.stepKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(retried.body.stepKey).not.toContain(key);
    expect([...world.charges.keys()]).toEqual([retried.body.stepKey]);
    const other = await order(`derived-other-${adapter}`);
    expect(other.body.stepKey).not.toBe(retried.body.stepKey);
  });

  it('resumes after the steps that finished when a later one failed', async () => {
    world.shipFails = true;
    const key = `resume-${adapter}`;
    const failed = await order(key);
    expect(failed.status).toBe(500);
    const resumed = await order(key);
    expect(resumed.status).toBe(201);
    expect(resumed.body).toMatchObject({ reservation: 1, chargeId: 1, shipment: { shipment: 1 } });
    expect([world.reserved, world.chargeCalls, world.shipped]).toEqual([1, 1, 1]);
  });

  it('runs a step that failed after its downstream call again, with the same key: one charge', async () => {
    world.chargeFails = 'after-charging';
    const key = `after-charging-${adapter}`;
    expect((await order(key)).status).toBe(500);
    const resumed = await order(key);
    expect(resumed.status).toBe(201);
    expect(world.chargeCalls).toBe(2);
    expect(world.charges.size).toBe(1);
    expect(world.reserved).toBe(1);
  });

  it('stores a step’s client error as the answer: a declined charge replays, nothing ships', async () => {
    world.chargeFails = 'declined';
    const key = `declined-${adapter}`;
    const declined = await order(key);
    expect(declined.status).toBe(402);
    world.chargeFails = undefined;
    const replay = await order(key);
    expect(replay.status).toBe(402);
    expect(replay.body).toEqual(declined.body);
    expect([world.reserved, world.chargeCalls, world.shipped]).toEqual([1, 1, 0]);
  });

  it('resumes from the recovery point once the lease of a request that stopped has ended; the stopped one starts no step after', async () => {
    let wake!: () => void;
    world.hangAfterCharge = new Promise((resolve) => (wake = resolve));
    const key = `stopped-${adapter}`;
    const path = '/orders/short-lease';
    // supertest sends a request once it is awaited or then()'d.
    const hung = order(key, path).then((response) => response);
    // The first attempt has reserved and charged, and then stopped (a stalled or dead process).
    await waitUntil(() => world.hanging);
    expect(world.charges.size).toBe(1);
    world.hangAfterCharge = undefined;
    try {
      const busy = await order(key, path);
      expect(busy.status).toBe(409);
      await sleep(SHORT_LEASE_MS + 50);
    } finally {
      // Past its lease either way: the test goes on, or ends without an open request.
      wake();
    }
    const resumed = await order(key, path);
    expect(resumed.status).toBe(201);
    expect(resumed.body).toMatchObject({ reservation: 1, chargeId: 1, shipment: { shipment: 1 } });
    expect([world.reserved, world.chargeCalls, world.shipped]).toEqual([1, 1, 1]);
    // The stopped attempt woke up past its lease: it starts no step, and records nothing.
    const late = await hung;
    expect(late.status).toBe(409);
    expect(late.body.type).toMatch(/key-in-flight$/);
    expect(world.shipped).toBe(1);
    expect((await order(key, path)).body).toEqual(resumed.body);
  });

  it('refuses a retry whose steps come in another order (problem+json), and keeps refusing', async () => {
    world.shipFails = true;
    const key = `order-${adapter}`;
    expect((await order(key)).status).toBe(500);
    world.swapOrder = true;
    for (let attempt = 0; attempt < 2; attempt++) {
      const refused = await order(key);
      expect(refused.status).toBe(500);
      expect(refused.headers['content-type']).toContain(PROBLEM_CONTENT_TYPE);
      expect(refused.body).toMatchObject({
        type: expect.stringMatching(/steps-mismatch$/),
        detail: expect.stringMatching(/Step 1 is "charge", where an earlier attempt .* "reserve"/),
      });
    }
    expect([world.reserved, world.chargeCalls, world.shipped]).toEqual([1, 1, 0]);
  });

  it('refuses a step result over maxResultBytes, and runs that step again on the retry', async () => {
    world.hugeShipment = true;
    const key = `huge-${adapter}`;
    const refused = await order(key);
    expect(refused.status).toBe(500);
    expect(refused.headers['content-type']).toContain(PROBLEM_CONTENT_TYPE);
    expect(refused.body.type).toMatch(/step-result-not-storable$/);
    expect(refused.body.detail).toMatch(
      /"ship" takes \d+ bytes as JSON, over steps\.maxResultBytes \(1024\)/,
    );
    world.hugeShipment = false;
    expect((await order(key)).status).toBe(201);
    expect([world.reserved, world.chargeCalls, world.shipped]).toEqual([1, 1, 2]);
  });

  it('keeps the key through a flow longer than its lease, each recorded step renewing it', async () => {
    world.stepDelayMs = 200;
    const key = `long-${adapter}`;
    const path = '/orders/short-lease';
    const flow = order(key, path).then((response) => response);
    // Past the first lease, while the flow is on its third step.
    await sleep(SHORT_LEASE_MS + 150);
    const duplicate = await order(key, path);
    expect(duplicate.status).toBe(409);
    const done = await flow;
    expect(done.status).toBe(201);
    expect([world.reserved, world.chargeCalls, world.shipped]).toEqual([1, 1, 1]);
  });

  it('refuses a step asked for while another runs, and releases the key only once that one ended', async () => {
    const key = `parallel-steps-${adapter}`;
    const refused = await order(key, '/orders/parallel-steps');
    expect(refused.status).toBe(500);
    expect(refused.headers['content-type']).toContain(PROBLEM_CONTENT_TYPE);
    expect(refused.body.detail).toMatch(/Step "b" started while step "a" was running/);
    // Answered once 'a' had ended and was recorded: the retry gets it without running it.
    expect(world.aRunning).toBe(0);
    const retried = await order(key, '/orders/parallel-steps');
    expect(retried.status).toBe(201);
    expect(retried.body).toEqual({ a: 'a', b: 'b' });
    expect([world.aRuns, world.aMostAtOnce]).toEqual([1, 1]);
  });

  it('answers as the handler does when it catches a refused step: no problem+json on its own answer', async () => {
    const key = `swallowed-${adapter}`;
    for (let attempt = 0; attempt < 2; attempt++) {
      const answered = await order(key, '/orders/swallowed');
      expect(answered.status).toBe(201);
      expect(answered.body).toEqual({ swallowed: true });
      expect(answered.headers['content-type']).not.toContain('problem');
    }
  });

  it('refuses steps on a route without a fingerprint, before running them', async () => {
    const refused = await order(`unfingerprinted-${adapter}`, '/orders/unfingerprinted');
    expect(refused.status).toBe(500);
    expect(refused.headers['content-type']).toContain(PROBLEM_CONTENT_TYPE);
    expect(refused.body.type).toMatch(/steps-unavailable$/);
    expect(world.chargeCalls).toBe(0);
  });

  it('runs one flow for 30 parallel duplicates', async () => {
    const key = `parallel-${adapter}`;
    const responses = await Promise.all(Array.from({ length: 30 }, () => order(key)));
    const statuses = responses.map((r) => r.status);
    expect(statuses.every((s) => s === 201 || s === 409)).toBe(true);
    expect(statuses).toContain(201);
    expect([world.reserved, world.chargeCalls, world.shipped]).toEqual([1, 1, 1]);
  });
});

describe('recovery points: start-up', () => {
  it('refuses steps options with a store that does not keep recovery points', async () => {
    const forgetful = Object.assign(new InMemoryIdempotencyStore(), { saveStep: undefined });
    const module: DynamicModule = {
      module: class ForgetfulModule {},
      imports: [IdempotencyModule.forRoot({ store: forgetful, steps: { keySecret: SECRET } })],
      controllers: [OrdersController],
    };
    await expect(createTestApp('express', module)).rejects.toThrow(
      /steps option needs a store that keeps recovery points/,
    );
  });

  it('refuses a key secret shorter than 32 bytes', async () => {
    const module: DynamicModule = {
      module: class ShortSecretModule {},
      imports: [
        IdempotencyModule.forRoot({
          store: new InMemoryIdempotencyStore(),
          steps: { keySecret: 'short' },
        }),
      ],
      controllers: [OrdersController],
    };
    await expect(createTestApp('express', module)).rejects.toThrow(/keySecret must be .* 32 bytes/);
  });
});

async function waitUntil(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  expect(condition()).toBe(true);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

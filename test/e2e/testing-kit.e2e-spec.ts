import { Body, Controller, type INestApplication, Module, Post } from '@nestjs/common';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test, type TestingModuleBuilder } from '@nestjs/testing';
import request from 'supertest';
import { Idempotent, IdempotencyModule, IdempotencyStore } from '../../lib';
import { postgresStore } from '../../lib/postgres';
import { InMemoryIdempotencyStore } from '../../lib/testing';
import { ADAPTERS, type AdapterName } from '../utils/test-app';

/*
 * The testing kit as users' tests would use it: a testing module with the in-memory store, no
 * TypeORM and no database, over real HTTP on both platforms.
 */

let runs = 0;

@Controller('payments')
class PaymentsController {
  @Post()
  @Idempotent()
  create(@Body() body: { amount: number }) {
    runs++;
    return { run: runs, amount: body.amount };
  }
}

/** A transactional route: it needs a store that runs transactions. */
@Controller('transfers')
class TransfersController {
  @Post()
  @Idempotent({ transactional: true })
  transfer() {
    runs++;
    return { run: runs };
  }
}

/** A feature module as an application has it: the module on the PostgreSQL store. */
@Module({
  imports: [IdempotencyModule.forRoot({ store: postgresStore() })],
  controllers: [PaymentsController],
})
class PaymentsModule {}

async function start(adapter: AdapterName, builder: TestingModuleBuilder) {
  const moduleRef = await builder.compile();
  const app: INestApplication = moduleRef.createNestApplication(
    adapter === 'fastify' ? new FastifyAdapter() : new ExpressAdapter(),
    { logger: false },
  );
  await app.init().catch(async (error: unknown) => {
    await app.close();
    throw error;
  });
  if (adapter === 'fastify') {
    await (app.getHttpAdapter().getInstance() as { ready(): Promise<unknown> }).ready();
  }
  await app.listen(0, '127.0.0.1');
  const url = await app.getUrl();
  return { app, http: () => request(url) };
}

describe.each(ADAPTERS)('testing kit (%s)', (adapter) => {
  let app: INestApplication | undefined;

  beforeEach(() => {
    runs = 0;
  });
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  const pay = (http: () => request.Agent, key: string, amount: number) =>
    http().post('/payments').set('Idempotency-Key', key).send({ amount });

  it('runs a controller on the in-memory store with one import: runs, replays, refuses a mismatch', async () => {
    const started = await start(
      adapter,
      Test.createTestingModule({
        imports: [IdempotencyModule.forRoot({ store: new InMemoryIdempotencyStore() })],
        controllers: [PaymentsController],
      }),
    );
    app = started.app;

    const first = await pay(started.http, 'k1', 100);
    expect(first.status).toBe(201);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    expect(first.body).toEqual({ run: 1, amount: 100 });

    const retry = await pay(started.http, 'k1', 100);
    expect(retry.status).toBe(201);
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(retry.headers['content-type']).toBe(first.headers['content-type']);
    expect(retry.text).toBe(first.text);

    const mismatch = await pay(started.http, 'k1', 200);
    expect(mismatch.status).toBe(422);
    expect(mismatch.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(mismatch.body.type).toBe('urn:nestjs-idempotency:problem:key-mismatch');
    expect(runs).toBe(1);
  });

  it("swaps the store of an application's module with overrideProvider", async () => {
    const started = await start(
      adapter,
      Test.createTestingModule({ imports: [PaymentsModule] })
        .overrideProvider(IdempotencyStore)
        .useValue(new InMemoryIdempotencyStore()),
    );
    app = started.app;

    expect((await pay(started.http, 'k2', 100)).status).toBe(201);
    expect((await pay(started.http, 'k2', 100)).headers['idempotent-replayed']).toBe('true');
    expect(runs).toBe(1);
  });

  it("moves the store's clock: a key past its TTL runs again", async () => {
    let now = Date.now();
    const started = await start(
      adapter,
      Test.createTestingModule({
        imports: [
          IdempotencyModule.forRoot({
            store: new InMemoryIdempotencyStore({ now: () => now }),
            ttlMs: 60_000,
          }),
        ],
        controllers: [PaymentsController],
      }),
    );
    app = started.app;

    await pay(started.http, 'k3', 100);
    now += 59_000;
    expect((await pay(started.http, 'k3', 100)).headers['idempotent-replayed']).toBe('true');
    now += 1_000;
    const again = await pay(started.http, 'k3', 100);
    expect(again.headers['idempotent-replayed']).toBeUndefined();
    expect(again.body).toEqual({ run: 2, amount: 100 });
  });

  it('refuses to start a transactional route on the in-memory store', async () => {
    await expect(
      start(
        adapter,
        Test.createTestingModule({
          imports: [IdempotencyModule.forRoot({ store: new InMemoryIdempotencyStore() })],
          controllers: [TransfersController],
        }),
      ),
    ).rejects.toThrow(
      'nestjs-idempotency: TransfersController.transfer is transactional, but the store in use cannot run transactions.',
    );
    expect(runs).toBe(0);
  });

  it('needs the module: a controller alone cannot resolve the interceptor', async () => {
    await expect(
      Test.createTestingModule({ controllers: [PaymentsController] }).compile(),
    ).rejects.toThrow(/can't resolve dependencies of the IdempotencyInterceptor/);
  });
});

import {
  Controller,
  type INestApplication,
  Module,
  type ModuleMetadata,
  Post,
  Res,
  type Type,
} from '@nestjs/common';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { APP_INTERCEPTOR, HttpAdapterHost } from '@nestjs/core';
import {
  Idempotent,
  IdempotencyInterceptor,
  IdempotencyModule,
  type IdempotencyRouteOptions,
  type IdempotencyStore,
  TransactionalIdempotencyStore,
} from '../../lib';
import { InMemoryIdempotencyStore } from '../../lib/testing';
import { ADAPTERS, type AdapterName, createTestApp } from '../utils/test-app';

/** A store that can run transactions, as far as the start-up checks can tell; never called. */
class TransactionsOnPaper extends TransactionalIdempotencyStore {
  claim = never;
  complete = never;
  markNotReplayable = never;
  release = never;
  purgeExpired = never;
  lookup = never;
  claimInTransaction = never;
}
function never(): never {
  throw new Error('not called at start-up');
}

const controllerWith = (options: IdempotencyRouteOptions, ownResponse = false): Type => {
  @Controller('orders')
  class OrdersController {
    @Post()
    @Idempotent(options)
    create(@Res({ passthrough: !ownResponse }) _response: unknown) {
      return {};
    }
  }
  return OrdersController;
};

/** Starts an app with `controller` on `store`; resolves to the start-up's error, if any. */
function startError(
  adapter: AdapterName,
  controller: Type,
  store: IdempotencyStore,
  moduleOptions: Record<string, unknown> = {},
): Promise<Error | undefined> {
  return startErrorOf(adapter, {
    imports: [IdempotencyModule.forRoot({ store, purgeIntervalMs: 0, ...moduleOptions })],
    controllers: [controller],
  });
}

/** Starts an app of `metadata`; resolves to the start-up's error, if any. */
async function startErrorOf(
  adapter: AdapterName,
  metadata: ModuleMetadata,
): Promise<Error | undefined> {
  let app: INestApplication | undefined;
  try {
    const moduleRef = await Test.createTestingModule(metadata).compile();
    app = moduleRef.createNestApplication(
      adapter === 'fastify' ? new FastifyAdapter() : new ExpressAdapter(),
      { logger: false },
    );
    await app.init();
    return undefined;
  } catch (error) {
    return error as Error;
  } finally {
    await app?.close().catch(() => undefined);
  }
}

/** A method decorator as instrumentation writes them: metadata copied, the name not. */
function wrapped(): MethodDecorator {
  return (_target, _key, descriptor: PropertyDescriptor) => {
    const original = descriptor.value as (...args: unknown[]) => unknown;
    const wrapper = function (this: unknown, ...args: unknown[]) {
      return original.apply(this, args);
    };
    Object.defineProperty(wrapper, 'name', { value: '' });
    for (const key of Reflect.getMetadataKeys(original)) {
      Reflect.defineMetadata(key, Reflect.getMetadata(key, original), wrapper);
    }
    descriptor.value = wrapper;
  };
}

@Controller('raw')
class RawController {
  constructor(private readonly adapterHost: HttpAdapterHost) {}

  @Post()
  @Idempotent()
  @wrapped()
  pay(@Res() response: unknown) {
    this.adapterHost.httpAdapter.reply(response, { paid: true }, 201);
  }
}

describe.each(ADAPTERS)('route configuration checked at start-up (%s)', (adapter) => {
  it('knows a wrapped @Res() route by its key, not its name: retries get 410, not a hang', async () => {
    @Module({
      imports: [IdempotencyModule.forRoot({ store: new InMemoryIdempotencyStore() })],
      controllers: [RawController],
    })
    class RawAppModule {}
    const app = await createTestApp(adapter, RawAppModule);
    try {
      const pay = () => app.http().post('/raw').set('Idempotency-Key', 'k');
      expect((await pay()).status).toBe(201);
      const retry = await pay().timeout(3000);
      expect(retry.status).toBe(410);
    } finally {
      await app.close();
    }
  });

  it('starts a well-configured route', async () => {
    expect(await startError(adapter, controllerWith({}), new InMemoryIdempotencyStore())).toBe(
      undefined,
    );
  });

  it('refuses a transactional route on a store without transactions', async () => {
    const error = await startError(
      adapter,
      controllerWith({ transactional: true }),
      new InMemoryIdempotencyStore(),
    );
    expect(error?.message).toBe(
      'nestjs-idempotency: OrdersController.create is transactional, but the store in use cannot run transactions.',
    );
  });

  it('refuses a transactional route that writes its own response', async () => {
    const error = await startError(
      adapter,
      controllerWith({ transactional: true }, true),
      new TransactionsOnPaper(),
    );
    expect(error?.message).toMatch(/OrdersController.create writes its response with @Res\(\)/);
  });

  it('refuses an unknown route option, and names where a moved one went', async () => {
    const typo = controllerWith({ ttlMS: 5 } as IdempotencyRouteOptions);
    expect((await startError(adapter, typo, new InMemoryIdempotencyStore()))?.message).toBe(
      'nestjs-idempotency: unknown option "ttlMS" in @Idempotent() of OrdersController.create.',
    );
    const moved = controllerWith({ tableName: 'keys' } as IdempotencyRouteOptions);
    expect((await startError(adapter, moved, new InMemoryIdempotencyStore()))?.message).toMatch(
      /tableName is an option of postgresStore\(\) from 'nestjs-idempotency\/postgres'/,
    );
  });

  it('refuses an invalid route option', async () => {
    const error = await startError(
      adapter,
      controllerWith({ lockTimeoutMs: -1 }),
      new InMemoryIdempotencyStore(),
    );
    expect(error?.message).toMatch(/lockTimeoutMs must be a positive number/);
  });

  it('refuses an unknown module option', async () => {
    const error = await startError(adapter, controllerWith({}), new InMemoryIdempotencyStore(), {
      partitioning: {},
    });
    expect(error?.message).toMatch(/partitioning is an option of postgresStore\(\)/);
  });

  describe('with a registration per feature module', () => {
    /** A feature module with its own registration on `store`, and one route of `options`. */
    const feature = (name: string, store: IdempotencyStore, options: IdempotencyRouteOptions) => {
      @Controller(name)
      class FeatureController {
        @Post()
        @Idempotent(options)
        create() {
          return {};
        }
      }
      @Module({
        imports: [IdempotencyModule.forRoot({ store, isGlobal: false, purgeIntervalMs: 0 })],
        controllers: [FeatureController],
      })
      class FeatureModule {}
      return FeatureModule;
    };

    it('holds each route against the store of its own module', async () => {
      const orders = feature('orders', new InMemoryIdempotencyStore(), {});
      const ledger = feature('ledger', new TransactionsOnPaper(), { transactional: true });
      expect(await startErrorOf(adapter, { imports: [orders, ledger] })).toBe(undefined);
      expect(await startErrorOf(adapter, { imports: [ledger, orders] })).toBe(undefined);
    });

    it("holds every route against the store of the application's own global interceptor", async () => {
      // The global interceptor runs first and handles the ledger's route on its own store,
      // which cannot run transactions; the feature's registration never sees the request.
      const ledger = feature('ledger', new TransactionsOnPaper(), { transactional: true });
      const error = await startErrorOf(adapter, {
        imports: [
          IdempotencyModule.forRoot({ store: new InMemoryIdempotencyStore(), purgeIntervalMs: 0 }),
          ledger,
        ],
        providers: [{ provide: APP_INTERCEPTOR, useClass: IdempotencyInterceptor }],
      });
      expect(error?.message).toBe(
        'nestjs-idempotency: FeatureController.create is transactional, but the store in use cannot run transactions.',
      );
    });

    it('still refuses a transactional route whose own module has a store without transactions', async () => {
      const orders = feature('orders', new TransactionsOnPaper(), {});
      const ledger = feature('ledger', new InMemoryIdempotencyStore(), { transactional: true });
      const error = await startErrorOf(adapter, { imports: [orders, ledger] });
      expect(error?.message).toBe(
        'nestjs-idempotency: FeatureController.create is transactional, but the store in use cannot run transactions.',
      );
    });
  });
});

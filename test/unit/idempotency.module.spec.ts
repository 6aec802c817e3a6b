import type { DynamicModule, FactoryProvider, Provider } from '@nestjs/common';
import { MODULE_METADATA } from '@nestjs/common/constants';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import { getDataSourceToken } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { postgresStore } from '../../lib/postgres';
import { IdempotencyTransaction } from '../../lib/postgres/typeorm/idempotency-transaction.service';
import { IdempotencyTransactionContext } from '../../lib/transaction/idempotency-transaction.context';
import { IdempotencyInterceptor } from '../../lib/idempotency.interceptor';
import { IdempotencyMaintenance } from '../../lib/idempotency-maintenance.service';
import { IdempotencyPurger } from '../../lib/idempotency-purger.service';
import { IdempotencyModule } from '../../lib/idempotency.module';
import {
  IDEMPOTENCY_MODULE_OPTIONS,
  IDEMPOTENCY_TRANSACTIONAL_STORE,
} from '../../lib/idempotency.module-definition';
import type { IdempotencyModuleOptions } from '../../lib/interfaces/idempotency-options.interface';
import type {
  ClaimHandle,
  ClaimRequest,
  ClaimResult,
} from '../../lib/store/claim-result.interface';
import { IdempotencyStore } from '../../lib/store/idempotency-store';
import { TransactionalIdempotencyStore } from '../../lib/store/transactional-idempotency-store';
import type { StoredResponse } from '../../lib/store/stored-response.interface';

/** A store kept in a Map: enough to show that a custom store needs no database. */
class MemoryStore extends IdempotencyStore {
  readonly responses = new Map<string, StoredResponse>();

  async claim(request: ClaimRequest): Promise<ClaimResult> {
    const response = this.responses.get(request.key);
    return response
      ? { kind: 'replay', response }
      : { kind: 'claimed', handle: { scope: request.scope, key: request.key, token: 't' } };
  }
  async complete(handle: ClaimHandle, response: StoredResponse): Promise<boolean> {
    this.responses.set(handle.key, response);
    return true;
  }
  async markNotReplayable(): Promise<boolean> {
    return true;
  }
  async release(handle: ClaimHandle): Promise<boolean> {
    return this.responses.delete(handle.key);
  }
  async purgeExpired(): Promise<number> {
    return 0;
  }
}

function provider(definition: DynamicModule, token: unknown): Provider | undefined {
  return definition.providers?.find(
    (candidate) => typeof candidate === 'object' && candidate.provide === token,
  );
}

function storeProvider(definition: DynamicModule): FactoryProvider<IdempotencyStore> {
  return provider(definition, IdempotencyStore) as FactoryProvider<IdempotencyStore>;
}

/** Every definition needs a store; these tests are about everything else. */
const store = new MemoryStore();

describe('IdempotencyModule definition', () => {
  it('is global by default, and not with isGlobal: false', () => {
    expect(IdempotencyModule.forRoot({ store }).global).toBe(true);
    expect(IdempotencyModule.forRoot({ store, ttlMs: 1_000 }).global).toBe(true);
    expect(IdempotencyModule.forRoot({ store, isGlobal: false }).global).toBe(false);
    expect(IdempotencyModule.forRootAsync({ store, useFactory: () => ({}) }).global).toBe(true);
    expect(
      IdempotencyModule.forRootAsync({ store, isGlobal: false, useFactory: () => ({}) }).global,
    ).toBe(false);
  });

  it('registers the interceptor globally only with useGlobalInterceptor: true', () => {
    expect(provider(IdempotencyModule.forRoot({ store }), APP_INTERCEPTOR)).toBeUndefined();
    expect(
      provider(IdempotencyModule.forRoot({ store, useGlobalInterceptor: true }), APP_INTERCEPTOR),
    ).toEqual({ provide: APP_INTERCEPTOR, useExisting: IdempotencyInterceptor });
    const async = IdempotencyModule.forRootAsync({
      store,
      useGlobalInterceptor: true,
      useFactory: () => ({}),
    });
    expect(provider(async, APP_INTERCEPTOR)).toEqual({
      provide: APP_INTERCEPTOR,
      useExisting: IdempotencyInterceptor,
    });
  });

  it('builds a factory-defined store from the options and what it injects', () => {
    const definition = IdempotencyModule.forRoot({ store: postgresStore(), ttlMs: 1_000 });
    expect(storeProvider(definition).inject).toEqual([
      IDEMPOTENCY_MODULE_OPTIONS,
      { token: DataSource, optional: true },
      IdempotencyTransactionContext,
      expect.anything(),
    ]);
    // The store's own providers join the module, and those it exports are exported.
    expect(definition.providers).toContain(IdempotencyTransaction);
    expect(definition.exports).toContain(IdempotencyTransaction);
  });

  it('keeps two registrations with different tables apart', () => {
    // Nest identifies a dynamic module by its metadata; the store's options must show in it.
    const on = (tableName: string) =>
      JSON.stringify(IdempotencyModule.forRoot({ store: postgresStore({ tableName }) }).providers);
    expect(on('billing.keys')).not.toBe(on('orders.keys'));
  });

  it('builds transactionalStore beside store, each from its own options', () => {
    const definition = IdempotencyModule.forRoot({
      store: postgresStore({ tableName: 'lease_keys' }),
      transactionalStore: postgresStore({ tableName: 'ledger_keys' }),
    });
    const transactional = provider(
      definition,
      IDEMPOTENCY_TRANSACTIONAL_STORE,
    ) as FactoryProvider<IdempotencyStore>;
    // Each factory reads the options provider of its own postgresStore() call.
    const optionsOf = (factory: FactoryProvider<IdempotencyStore>) =>
      (provider(definition, factory.inject?.at(-1)) as { useValue: unknown }).useValue;
    expect(optionsOf(storeProvider(definition))).toEqual({ tableName: 'lease_keys' });
    expect(optionsOf(transactional)).toEqual({ tableName: 'ledger_keys' });
  });

  it('serves transactional routes from store when no transactionalStore is given', () => {
    const definition = IdempotencyModule.forRoot({ store });
    const transactional = provider(
      definition,
      IDEMPOTENCY_TRANSACTIONAL_STORE,
    ) as FactoryProvider<IdempotencyStore | null>;
    expect(transactional.inject).toEqual([IdempotencyStore]);
    // A store without transactions leaves transactional routes without one (refused at start-up).
    expect(transactional.useFactory(store)).toBeNull();
  });

  it('warns about queries outside the transaction unless NODE_ENV is production', () => {
    const install = (nodeEnv: string | undefined, warn?: boolean) => {
      const driver = { obtainMasterConnection: async () => undefined };
      const original = driver.obtainMasterConnection;
      const factory = storeProvider(
        IdempotencyModule.forRoot({
          store: postgresStore({ warnOnQueriesOutsideTransaction: warn }),
        }),
      ).useFactory;
      const saved = process.env.NODE_ENV;
      process.env.NODE_ENV = nodeEnv;
      try {
        factory(
          {},
          { driver, options: { type: 'postgres' } },
          new IdempotencyTransactionContext(),
          {
            warnOnQueriesOutsideTransaction: warn,
          },
        );
      } catch {
        // The store itself needs a real DataSource; only the warner's installation matters here.
      } finally {
        process.env.NODE_ENV = saved;
      }
      return driver.obtainMasterConnection !== original;
    };
    expect(install('test')).toBe(true);
    expect(install('production')).toBe(false);
    expect(install('production', true)).toBe(true);
    expect(install('test', false)).toBe(false);
  });

  it('borrows the DataSource named by dataSourceName, optionally', () => {
    expect(getDataSourceToken()).toBe(DataSource);
    const named = IdempotencyModule.forRootAsync({
      store: postgresStore({ dataSourceName: 'payments' }),
      useFactory: () => ({}),
    });
    expect(storeProvider(named).inject).toEqual([
      IDEMPOTENCY_MODULE_OPTIONS,
      { token: getDataSourceToken('payments'), optional: true },
      IdempotencyTransactionContext,
      expect.anything(),
    ]);
    expect(getDataSourceToken('payments')).toBe('paymentsDataSource');
  });

  it('keeps the extras out of the options object', () => {
    const definition = IdempotencyModule.forRoot({
      isGlobal: false,
      store,
      useGlobalInterceptor: true,
      ttlMs: 1_000,
    });
    expect(provider(definition, IDEMPOTENCY_MODULE_OPTIONS)).toEqual({
      provide: IDEMPOTENCY_MODULE_OPTIONS,
      useValue: { ttlMs: 1_000 },
    });
  });

  it('takes the options from the forRootAsync factory', () => {
    const useFactory = (): IdempotencyModuleOptions => ({ ttlMs: 1_000 });
    const definition = IdempotencyModule.forRootAsync({ store, useFactory, inject: ['CONFIG'] });
    expect(provider(definition, IDEMPOTENCY_MODULE_OPTIONS)).toEqual({
      provide: IDEMPOTENCY_MODULE_OPTIONS,
      useFactory,
      inject: ['CONFIG'],
    });
  });

  it('exports the interceptor and the store', () => {
    const exported: unknown[] = Reflect.getMetadata(MODULE_METADATA.EXPORTS, IdempotencyModule);
    expect(exported).toEqual(expect.arrayContaining([IdempotencyInterceptor, IdempotencyStore]));
  });

  it('names the missing DataSource of postgresStore()', () => {
    const factory = storeProvider(
      IdempotencyModule.forRoot({ store: postgresStore({ dataSourceName: 'payments' }) }),
    ).useFactory;
    expect(() => factory({}, undefined, new IdempotencyTransactionContext(), {})).toThrow(
      'nestjs-idempotency: no TypeORM DataSource named "payments" found for postgresStore(). Import TypeOrmModule.forRoot() in the application.',
    );
  });

  it('refuses a definition without a store, naming where stores come from', () => {
    expect(() => IdempotencyModule.forRoot({ ttlMs: 1_000 })).toThrow(
      "nestjs-idempotency: no store. Pass one to IdempotencyModule.forRoot({ store }): postgresStore() from 'nestjs-idempotency/postgres', or new InMemoryIdempotencyStore() from 'nestjs-idempotency/testing' in tests.",
    );
    expect(() => IdempotencyModule.forRootAsync({ useFactory: () => ({}) })).toThrow(/no store/);
  });
});

describe('IdempotencyModule without TypeORM', () => {
  it('uses a custom store and needs no DataSource', async () => {
    const custom = new MemoryStore();
    const moduleRef = await Test.createTestingModule({
      imports: [IdempotencyModule.forRoot({ store: custom, purgeIntervalMs: 0 })],
    }).compile();
    expect(moduleRef.get(IdempotencyStore)).toBe(custom);
    expect(moduleRef.get(IdempotencyInterceptor)).toBeInstanceOf(IdempotencyInterceptor);
    await moduleRef.close();
  });

  it('uses a custom store beside the forRootAsync factory', async () => {
    const custom = new MemoryStore();
    const moduleRef = await Test.createTestingModule({
      imports: [
        IdempotencyModule.forRootAsync({
          store: custom,
          useFactory: () => ({ purgeIntervalMs: 0 }),
        }),
      ],
    }).compile();
    expect(moduleRef.get(IdempotencyStore)).toBe(custom);
    await moduleRef.close();
  });

  it('constructs a store class with Nest', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [IdempotencyModule.forRoot({ store: MemoryStore, purgeIntervalMs: 0 })],
    }).compile();
    expect(moduleRef.get(IdempotencyStore)).toBeInstanceOf(MemoryStore);
    await moduleRef.close();
  });
});

describe('store maintenance', () => {
  /** Declares maintenance every 20 ms and counts the calls; fails the second one. */
  class MaintainedStore extends MemoryStore {
    prepared = 0;
    maintained = 0;
    override async prepare(): Promise<void> {
      this.prepared++;
    }
    override async maintain(): Promise<void> {
      this.maintained++;
      if (this.maintained === 2) {
        throw new Error('storage unreachable');
      }
    }
    override maintenanceIntervalMs(): number {
      return 20;
    }
  }

  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  it("runs the store's upkeep on the interval it declares, past a failure, until the app closes", async () => {
    const maintained = new MaintainedStore();
    const app = await Test.createTestingModule({
      // The purge is off: maintenance does not depend on it.
      imports: [IdempotencyModule.forRoot({ store: maintained, purgeIntervalMs: 0 })],
    }).compile();
    await app.init();
    expect(maintained.prepared).toBe(1);
    await sleep(200);
    // Twenty-ish calls on an idle machine; a loaded one still gets past the failing second.
    expect(maintained.maintained).toBeGreaterThanOrEqual(3);
    await app.close();
    const afterClose = maintained.maintained;
    await sleep(100);
    expect(maintained.maintained).toBe(afterClose);
  });

  it('never calls maintain() on a store that declares no interval', async () => {
    const quiet = new (class extends MaintainedStore {
      override maintenanceIntervalMs(): number {
        return 0;
      }
    })();
    const app = await Test.createTestingModule({
      imports: [IdempotencyModule.forRoot({ store: quiet, purgeIntervalMs: 0 })],
    }).compile();
    await app.init();
    await sleep(100);
    await app.close();
    expect(quiet.prepared).toBe(1);
    expect(quiet.maintained).toBe(0);
  });

  /** A store whose preparation takes `prepareMs` (or fails), and that counts purges. */
  class SlowStore extends MemoryStore {
    events: string[] = [];
    constructor(
      private readonly prepareMs: number,
      private readonly failPrepare = false,
    ) {
      super();
    }
    override async prepare(): Promise<void> {
      await sleep(this.prepareMs);
      this.events.push('prepared');
      if (this.failPrepare) {
        throw new Error('table missing');
      }
    }
    override async purgeExpired(): Promise<number> {
      this.events.push('purge');
      return 0;
    }
  }

  it('starts purging only once the store is prepared', async () => {
    const slow = new SlowStore(300);
    const app = await Test.createTestingModule({
      imports: [IdempotencyModule.forRoot({ store: slow, purgeIntervalMs: 20 })],
    }).compile();
    await app.init();
    expect(slow.events).toEqual(['prepared']);
    await sleep(150);
    await app.close();
    expect(slow.events[0]).toBe('prepared');
    expect(slow.events.filter((event) => event === 'purge').length).toBeGreaterThan(0);
  });

  it('never purges after a failed preparation', async () => {
    const failing = new SlowStore(50, true);
    const app = await Test.createTestingModule({
      imports: [IdempotencyModule.forRoot({ store: failing, purgeIntervalMs: 20 })],
    }).compile();
    await expect(app.init()).rejects.toThrow('table missing');
    await sleep(200);
    expect(failing.events).toEqual(['prepared']);
  });

  it('waits for a running maintenance as the application closes, and runs one on demand', async () => {
    let finish: () => void = () => undefined;
    const hanging = new (class extends MaintainedStore {
      override maintain(): Promise<void> {
        this.maintained++;
        return new Promise((resolve) => (finish = resolve));
      }
    })();
    const app = await Test.createTestingModule({
      imports: [IdempotencyModule.forRoot({ store: hanging, purgeIntervalMs: 0 })],
    }).compile();
    await app.init();
    await sleep(60);
    // One run at a time: later ticks join the hanging one.
    expect(hanging.maintained).toBe(1);
    let closed = false;
    const closing = app.close().then(() => (closed = true));
    await sleep(50);
    expect(closed).toBe(false);
    finish();
    await closing;
    expect(closed).toBe(true);
  });

  it('runs maintainNow() for the application, and reports its failure', async () => {
    const maintained = new (class extends MaintainedStore {
      override maintenanceIntervalMs(): number {
        return 0;
      }
    })();
    const app = await Test.createTestingModule({
      imports: [IdempotencyModule.forRoot({ store: maintained, purgeIntervalMs: 0 })],
    }).compile();
    await app.init();
    const maintenance = app.get(IdempotencyMaintenance);
    await maintenance.maintainNow();
    expect(maintained.maintained).toBe(1);
    // The second call fails in this store.
    await expect(maintenance.maintainNow()).rejects.toThrow('storage unreachable');
    await app.close();
  });
});

describe('two stores in one registration', () => {
  /** Counts what the module asks of it. */
  class CountingStore extends MemoryStore {
    prepared = 0;
    purged = 0;
    override async prepare(): Promise<void> {
      this.prepared++;
    }
    override async purgeExpired(): Promise<number> {
      this.purged++;
      return 0;
    }
  }

  /** A store that runs transactions as far as the module can tell, and counts the same. */
  class CountingTransactionalStore extends TransactionalIdempotencyStore {
    prepared = 0;
    purged = 0;
    claim = unused;
    complete = unused;
    markNotReplayable = unused;
    release = unused;
    lookup = unused;
    claimInTransaction = unused;
    override async prepare(): Promise<void> {
      this.prepared++;
    }
    async purgeExpired(): Promise<number> {
      this.purged++;
      return 0;
    }
  }

  it('prepares and purges each store once', async () => {
    const lease = new CountingStore();
    const transactional = new CountingTransactionalStore();
    const app = await Test.createTestingModule({
      imports: [
        IdempotencyModule.forRoot({
          store: lease,
          transactionalStore: transactional,
          purgeIntervalMs: 0,
        }),
      ],
    }).compile();
    await app.init();
    await app.get(IdempotencyPurger).purgeNow();
    await app.close();
    expect([lease.prepared, transactional.prepared]).toEqual([1, 1]);
    expect([lease.purged, transactional.purged]).toEqual([1, 1]);
  });

  it('takes the same definition given twice as one store', async () => {
    const counting = new CountingStore();
    const definition = IdempotencyModule.forRoot({ store: counting, transactionalStore: counting });
    expect(
      (provider(definition, IDEMPOTENCY_TRANSACTIONAL_STORE) as FactoryProvider).inject,
    ).toEqual([IdempotencyStore]);
    const app = await Test.createTestingModule({
      imports: [
        IdempotencyModule.forRoot({
          store: counting,
          transactionalStore: counting,
          purgeIntervalMs: 0,
        }),
      ],
    }).compile();
    await app.init();
    await app.get(IdempotencyPurger).purgeNow();
    await app.close();
    expect([counting.prepared, counting.purged]).toEqual([1, 1]);
  });
});

function unused(): never {
  throw new Error('not called by these tests');
}

import type { DynamicModule, FactoryProvider, Provider } from '@nestjs/common';
import { MODULE_METADATA } from '@nestjs/common/constants';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import { getDataSourceToken } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { IdempotencyInterceptor } from '../../lib/idempotency.interceptor';
import { IdempotencyModule } from '../../lib/idempotency.module';
import {
  IDEMPOTENCY_DATA_SOURCE,
  IDEMPOTENCY_MODULE_OPTIONS,
} from '../../lib/idempotency.module-definition';
import type { IdempotencyModuleOptions } from '../../lib/interfaces/idempotency-options.interface';
import type {
  ClaimHandle,
  ClaimRequest,
  ClaimResult,
} from '../../lib/store/claim-result.interface';
import { IdempotencyStore } from '../../lib/store/idempotency-store';
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

function dataSourceProvider(definition: DynamicModule): FactoryProvider<DataSource | null> {
  return provider(definition, IDEMPOTENCY_DATA_SOURCE) as FactoryProvider<DataSource | null>;
}

function storeProvider(definition: DynamicModule): FactoryProvider<IdempotencyStore> {
  return provider(definition, IdempotencyStore) as FactoryProvider<IdempotencyStore>;
}

describe('IdempotencyModule definition', () => {
  it('is global by default, and not with isGlobal: false', () => {
    expect(IdempotencyModule.forRoot().global).toBe(true);
    expect(IdempotencyModule.forRoot({ ttlMs: 1_000 }).global).toBe(true);
    expect(IdempotencyModule.forRoot({ isGlobal: false }).global).toBe(false);
    expect(IdempotencyModule.forRootAsync({ useFactory: () => ({}) }).global).toBe(true);
    expect(IdempotencyModule.forRootAsync({ isGlobal: false, useFactory: () => ({}) }).global).toBe(
      false,
    );
  });

  it('registers the interceptor globally only with useGlobalInterceptor: true', () => {
    expect(provider(IdempotencyModule.forRoot(), APP_INTERCEPTOR)).toBeUndefined();
    expect(
      provider(IdempotencyModule.forRoot({ useGlobalInterceptor: true }), APP_INTERCEPTOR),
    ).toEqual({ provide: APP_INTERCEPTOR, useExisting: IdempotencyInterceptor });
    const async = IdempotencyModule.forRootAsync({
      useGlobalInterceptor: true,
      useFactory: () => ({}),
    });
    expect(provider(async, APP_INTERCEPTOR)).toEqual({
      provide: APP_INTERCEPTOR,
      useExisting: IdempotencyInterceptor,
    });
  });

  it('borrows the DataSource named by dataSourceName, optionally', () => {
    expect(getDataSourceToken()).toBe(DataSource);
    expect(dataSourceProvider(IdempotencyModule.forRoot()).inject).toEqual([
      { token: DataSource, optional: true },
    ]);
    const named = IdempotencyModule.forRootAsync({
      dataSourceName: 'payments',
      useFactory: () => ({}),
    });
    expect(dataSourceProvider(named).inject).toEqual([
      { token: getDataSourceToken('payments'), optional: true },
    ]);
    expect(getDataSourceToken('payments')).toBe('paymentsDataSource');
    // The store is built from the options and that borrowed DataSource (or none).
    expect(storeProvider(named).inject).toEqual([
      IDEMPOTENCY_MODULE_OPTIONS,
      IDEMPOTENCY_DATA_SOURCE,
    ]);
  });

  it('keeps the extras out of the options object', () => {
    const definition = IdempotencyModule.forRoot({
      isGlobal: false,
      dataSourceName: 'payments',
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
    const definition = IdempotencyModule.forRootAsync({ useFactory, inject: ['CONFIG'] });
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

  it('names the missing DataSource when there is neither one nor a store', () => {
    const factory = storeProvider(
      IdempotencyModule.forRoot({ dataSourceName: 'payments' }),
    ).useFactory;
    expect(() => factory({}, undefined)).toThrow(
      'nestjs-idempotency: no TypeORM DataSource named "payments" found. Import TypeOrmModule.forRoot() or pass a store.',
    );
  });
});

describe('IdempotencyModule without TypeORM', () => {
  it('uses a custom store and needs no DataSource', async () => {
    const store = new MemoryStore();
    const moduleRef = await Test.createTestingModule({
      imports: [IdempotencyModule.forRoot({ store, purgeIntervalMs: 0 })],
    }).compile();
    expect(moduleRef.get(IdempotencyStore)).toBe(store);
    expect(moduleRef.get(IdempotencyInterceptor)).toBeInstanceOf(IdempotencyInterceptor);
    await moduleRef.close();
  });

  it('uses a custom store from the forRootAsync factory', async () => {
    const store = new MemoryStore();
    const moduleRef = await Test.createTestingModule({
      imports: [
        IdempotencyModule.forRootAsync({ useFactory: () => ({ store, purgeIntervalMs: 0 }) }),
      ],
    }).compile();
    expect(moduleRef.get(IdempotencyStore)).toBe(store);
    await moduleRef.close();
  });

  it('fails to compile with a clear message when there is no store and no DataSource', async () => {
    const compiling = Test.createTestingModule({
      imports: [IdempotencyModule.forRoot({ purgeIntervalMs: 0 })],
    }).compile();
    await expect(compiling).rejects.toThrow(
      'nestjs-idempotency: no TypeORM DataSource found. Import TypeOrmModule.forRoot() or pass a store.',
    );
  });
});

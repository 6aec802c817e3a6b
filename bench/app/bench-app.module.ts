import { type DynamicModule, Module } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { TypeOrmModule, getDataSourceToken } from '@nestjs/typeorm';
import { ClsPluginTransactional, TransactionHost } from '@nestjs-cls/transactional';
import { TransactionalAdapterTypeOrm } from '@nestjs-cls/transactional-adapter-typeorm';
import { ClsModule } from 'nestjs-cls';
import type { Pool } from 'pg';
import { DataSource } from 'typeorm';
import { IdempotencyModule } from '../../lib';
import { CreateIdempotencyRecords1764201600000, postgresStore } from '../../lib/postgres';
import { entityManagerClient, pgPoolStore } from '../../lib/postgres/pool';
import { redisStore } from '../../lib/redis';
import { PARTITIONED_IDEMPOTENCY_TABLE } from './bench-app.config';
import { BenchOrder } from './bench-order.entity';
import { BenchOrdersController } from './bench-orders.controller';
import {
  BenchOrdersService,
  ClsBenchOrdersService,
  entityManagerQuery,
} from './bench-orders.service';
import { CreateBenchOrders1764201700000 } from './create-bench-orders.migration';
import { CreatePartitionedIdempotencyRecords1764201800000 } from './create-partitioned-idempotency-records.migration';
import { PassThroughInterceptor } from './pass-through.interceptor';

/** How one bench application is set up. */
export interface BenchAppConfig {
  databaseUrl: string;
  /** Registers the interceptor for every route (`useGlobalInterceptor`). */
  globalInterceptor: boolean;
  /** Registers a global interceptor that does nothing, to measure Nest's own share. */
  passThroughInterceptor: boolean;
  /** Keeps its keys in a table partitioned by expiry (see `BenchAppInstance.partitioned`). */
  partitioned: boolean;
  /**
   * Puts the lease-mode routes on the Redis store at this URL; the transactional routes keep
   * their records in PostgreSQL (`transactionalStore`), as the README shows. Unset: PostgreSQL.
   */
  redisUrl?: string;
  /** Puts the lease routes on `pgPoolStore()` (see `BenchAppInstance.pgPool`). */
  pgPool: boolean;
  /** Runs the transactional routes in nestjs-cls transactions (see `BenchAppInstance`). */
  clsTransactions: boolean;
  /** Size of the DataSource's pg pool. */
  poolSize: number;
}

/**
 * The pg pool the handlers' writes go through (TypeORM's), for `pgPoolStore()`: one pool for the
 * store and the handler, as an app on Drizzle or Kysely shares its `Pool`.
 */
const HANDLER_POOL = Symbol('HANDLER_POOL');

@Module({
  providers: [
    {
      provide: HANDLER_POOL,
      useFactory: (dataSource: DataSource) =>
        (dataSource.driver as unknown as { master: Pool }).master,
      inject: [DataSource],
    },
  ],
  exports: [HANDLER_POOL],
})
class HandlerPoolModule {}

@Module({})
export class BenchAppModule {
  static register(config: BenchAppConfig): DynamicModule {
    return {
      module: BenchAppModule,
      imports: [
        TypeOrmModule.forRoot({
          type: 'postgres',
          url: config.databaseUrl,
          entities: [BenchOrder],
          migrations: config.partitioned
            ? [CreateBenchOrders1764201700000, CreatePartitionedIdempotencyRecords1764201800000]
            : [CreateIdempotencyRecords1764201600000, CreateBenchOrders1764201700000],
          migrationsRun: true,
          logging: false,
          // Connections stay open between runs, as under steady load: pg's default closes them
          // after 10 s idle, and the next run would pay for 32 connection set-ups.
          extra: { max: config.poolSize, idleTimeoutMillis: 0 },
        }),
        TypeOrmModule.forFeature([BenchOrder]),
        ...(config.clsTransactions
          ? [
              ClsModule.forRoot({
                global: true,
                plugins: [
                  new ClsPluginTransactional({
                    adapter: new TransactionalAdapterTypeOrm({
                      dataSourceToken: getDataSourceToken(),
                    }),
                  }),
                ],
              }),
            ]
          : []),
        IdempotencyModule.forRoot({
          useGlobalInterceptor: config.globalInterceptor,
          // A purge pass deletes up to 100 000 rows at once; landing in one scenario's window it
          // would be noise, and it is not a per-request cost.
          purgeIntervalMs: 0,
          // The defaults (daily partitions, three days ahead: four that every lookup probes) are
          // what a user gets and what docs/partitioning.md measured. They are created as the app
          // starts, which covers any run; no later maintenance, so no partition DDL lands in a
          // window.
          ...(config.redisUrl
            ? { store: redisStore({ url: config.redisUrl }), transactionalStore: postgresStore() }
            : config.clsTransactions
              ? {
                  store: pgPoolStore({
                    poolToken: HANDLER_POOL,
                    imports: [HandlerPoolModule],
                    transactionHost: {
                      token: TransactionHost,
                      query: entityManagerQuery,
                      client: entityManagerClient,
                    },
                  }),
                }
              : config.pgPool
                ? {
                    store: pgPoolStore({ poolToken: HANDLER_POOL, imports: [HandlerPoolModule] }),
                    transactionalStore: postgresStore(),
                  }
                : config.partitioned
                  ? {
                      store: postgresStore({
                        tableName: PARTITIONED_IDEMPOTENCY_TABLE,
                        partitioning: { maintenanceIntervalMs: 0 },
                      }),
                    }
                  : { store: postgresStore() }),
        }),
      ],
      controllers: [BenchOrdersController],
      providers: [
        config.clsTransactions
          ? { provide: BenchOrdersService, useClass: ClsBenchOrdersService }
          : BenchOrdersService,
        ...(config.passThroughInterceptor
          ? [{ provide: APP_INTERCEPTOR, useClass: PassThroughInterceptor }]
          : []),
      ],
    };
  }
}

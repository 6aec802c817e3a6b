import { type DynamicModule, Global, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { IdempotencyModule } from '../lib';
import {
  AddIdempotencyRecoveryPoints1796601600000,
  CreateIdempotencyRecords1764201600000,
  IdempotencyRecord,
  postgresStore,
} from '../lib/postgres';
import { redisStore } from '../lib/redis';
import { DemoAuthGuard } from './auth/demo-auth.guard';
import type { SampleAppConfig } from './config';
import { AccountsModule } from './accounts/accounts.module';
import { AdminModule } from './admin/admin.module';
import { HealthModule } from './health/health.module';
import { Account } from './accounts/account.entity';
import { CreatePayments1764201600001 } from './database/migrations/1764201600001-create-payments';
import { CreateAccountsAndTransfers1764201600003 } from './database/migrations/1764201600003-create-accounts-and-transfers';
import { CreatePaymentAttempts1764201600004 } from './database/migrations/1764201600004-create-payment-attempts';
import { CreateStockAndShipments1764201600010 } from './database/migrations/1764201600010-create-stock-and-shipments';
import { Transfer } from './transfers/transfer.entity';
import { TransfersModule } from './transfers/transfers.module';
import { Payment } from './payments/payment.entity';
import { PaymentsModule } from './payments/payments.module';
import { OrdersModule } from './orders/orders.module';
import { PaymentsConsumerModule } from './payments-consumer/payments-consumer.module';
import { SAMPLE_APP_CONFIG } from './sample-app.constants';

/** The sample app's settings once a database URL is known. */
export type ResolvedSampleAppConfig = SampleAppConfig & { databaseUrl: string };

@Global()
@Module({})
class SampleConfigModule {
  static register(config: ResolvedSampleAppConfig): DynamicModule {
    return {
      module: SampleConfigModule,
      providers: [{ provide: SAMPLE_APP_CONFIG, useValue: config }],
      exports: [SAMPLE_APP_CONFIG],
    };
  }
}

/**
 * The payments service. Tables are created by migrations that run at start (`migrationsRun`):
 * the library's `CreateIdempotencyRecords` next to the app's own, as a production app would.
 */
@Module({})
export class AppModule {
  static register(config: ResolvedSampleAppConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [
        SampleConfigModule.register(config),
        TypeOrmModule.forRootAsync({
          inject: [SAMPLE_APP_CONFIG],
          useFactory: (settings: ResolvedSampleAppConfig) => ({
            type: 'postgres' as const,
            url: settings.databaseUrl,
            entities: [Payment, Account, Transfer, IdempotencyRecord],
            migrations: [
              CreateIdempotencyRecords1764201600000,
              CreatePayments1764201600001,
              CreateAccountsAndTransfers1764201600003,
              CreatePaymentAttempts1764201600004,
              CreateStockAndShipments1764201600010,
              AddIdempotencyRecoveryPoints1796601600000,
            ],
            migrationsRun: true,
            // Pool size: a transactional request holds one connection while its handler runs.
            extra: { max: 20 },
          }),
        }),
        IdempotencyModule.forRootAsync({
          ...stores(config),
          inject: [SAMPLE_APP_CONFIG],
          useFactory: (settings: ResolvedSampleAppConfig) => ({
            ttlMs: settings.idempotencyTtlMs,
            lockTimeoutMs: settings.idempotencyLockTimeoutMs,
            purgeIntervalMs: settings.idempotencyPurgeIntervalMs,
            // The recovery points of /orders, whose local steps are atomic phases: PostgreSQL only.
            ...(settings.idempotencyStore === 'postgres' && {
              steps: { keySecret: settings.idempotencyStepSecret },
            }),
          }),
        }),
        PaymentsModule,
        AccountsModule,
        TransfersModule,
        OrdersModule,
        AdminModule,
        HealthModule,
        ...(config.paymentsConsumer ? [PaymentsConsumerModule] : []),
      ],
      providers: [{ provide: APP_GUARD, useClass: DemoAuthGuard }],
    };
  }
}

/**
 * PostgreSQL for every route by default. With `IDEMPOTENCY_STORE=redis`, lease routes keep their
 * keys in Redis and transactional routes in PostgreSQL, where the record commits with the writes.
 */
function stores(config: ResolvedSampleAppConfig) {
  if (config.idempotencyStore === 'postgres') {
    return { store: postgresStore() };
  }
  const connection = config.redisClusterNodes
    ? { cluster: { nodes: config.redisClusterNodes } }
    : { url: config.redisUrl };
  return { store: redisStore(connection), transactionalStore: postgresStore() };
}

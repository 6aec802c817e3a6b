import { type DynamicModule, Global, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import {
  CreateIdempotencyRecords1764201600000,
  IdempotencyModule,
  IdempotencyRecord,
} from '../lib';
import { DemoAuthGuard } from './auth/demo-auth.guard';
import type { SampleAppConfig } from './config';
import { CreatePayments1764201600001 } from './database/migrations/1764201600001-create-payments';
import { Payment } from './payments/payment.entity';
import { PaymentsModule } from './payments/payments.module';
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
            entities: [Payment, IdempotencyRecord],
            migrations: [CreateIdempotencyRecords1764201600000, CreatePayments1764201600001],
            migrationsRun: true,
            // Pool size: one connection per concurrently running handler, plus claims.
            extra: { max: 20 },
          }),
        }),
        IdempotencyModule.forRootAsync({
          inject: [SAMPLE_APP_CONFIG],
          useFactory: (settings: ResolvedSampleAppConfig) => ({
            ttlMs: settings.idempotencyTtlMs,
            lockTimeoutMs: settings.idempotencyLockTimeoutMs,
          }),
        }),
        PaymentsModule,
      ],
      providers: [{ provide: APP_GUARD, useClass: DemoAuthGuard }],
    };
  }
}

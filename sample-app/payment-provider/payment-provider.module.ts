import { type DynamicModule, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { IdempotencyModule } from '../../lib';
import {
  CreateIdempotencyRecords1764201600000,
  IdempotencyRecord,
  postgresStore,
} from '../../lib/postgres';
import { ChargesController } from './charges/charges.controller';
import { ChargesService } from './charges/charges.service';
import { CardBehavioursService } from './control/card-behaviours.service';
import { ControlController } from './control/control.controller';
import { CreateCharges1764201600101 } from './database/migrations/1764201600101-create-charges';
import { ProviderMigrations } from './database/provider-migrations';
import { PROVIDER_DATA_SOURCE } from './payment-provider.constants';

/** The fake payment provider's settings. */
export interface PaymentProviderConfig {
  /** `postgres://` URL of the provider's own database. */
  databaseUrl: string;
  /** The lease of its idempotency keys, in milliseconds. */
  idempotencyLockTimeoutMs: number;
  /** How long it keeps finished keys, in milliseconds. */
  idempotencyTtlMs: number;
  /**
   * Whether the test hooks (`PUT /control/cards/:card`: fail, slow down, crash) are served:
   * `PAYMENT_PROVIDER_TEST_HOOKS=true` only, since one of them kills the process.
   */
  testHooks: boolean;
}

/** Whether `env` turns the provider's test hooks on. */
export function testHooksIn(env: NodeJS.ProcessEnv): boolean {
  return env.PAYMENT_PROVIDER_TEST_HOOKS === 'true';
}

/**
 * A fake payment provider: a service of its own, with its own database, protected by this module
 * as any service that takes `Idempotency-Key`s would be.
 */
@Module({})
export class PaymentProviderModule {
  static register(config: PaymentProviderConfig): DynamicModule {
    return {
      module: PaymentProviderModule,
      imports: [
        TypeOrmModule.forRoot({
          name: PROVIDER_DATA_SOURCE,
          type: 'postgres',
          url: config.databaseUrl,
          entities: [IdempotencyRecord],
          migrations: [CreateIdempotencyRecords1764201600000, CreateCharges1764201600101],
          // Run by ProviderMigrations, under a lock.
          migrationsRun: false,
          extra: { max: 10 },
        }),
        IdempotencyModule.forRoot({
          store: postgresStore({ dataSourceName: PROVIDER_DATA_SOURCE }),
          lockTimeoutMs: config.idempotencyLockTimeoutMs,
          ttlMs: config.idempotencyTtlMs,
        }),
      ],
      controllers: config.testHooks ? [ChargesController, ControlController] : [ChargesController],
      providers: [ProviderMigrations, ChargesService, CardBehavioursService],
    };
  }
}

import { type DynamicModule, Inject, Module, type OnApplicationShutdown } from '@nestjs/common';
import knex, { type Knex } from 'knex';
import { IdempotencyModule } from 'nestjs-idempotency';
import { pgPoolStore } from 'nestjs-idempotency/pg';
import { OrdersController } from './orders.controller';
import { KNEX } from './tokens';

/** The app's Knex instance (with its own pool of pg clients). */
@Module({})
class DatabaseModule implements OnApplicationShutdown {
  constructor(@Inject(KNEX) private readonly knex: Knex) {}

  static forRoot(connectionString: string): DynamicModule {
    return {
      module: DatabaseModule,
      global: true,
      providers: [
        { provide: KNEX, useFactory: () => knex({ client: 'pg', connection: connectionString }) },
      ],
      exports: [KNEX],
    };
  }

  onApplicationShutdown(): Promise<void> {
    return this.knex.destroy();
  }
}

/**
 * An app on Knex with `POST /orders` run once per key. Knex's pool holds pg clients, not a
 * `pg.Pool`, so the idempotency keys get a pool of their own, ended at shutdown.
 */
@Module({})
export class KnexExampleModule {
  static forRoot(connectionString: string): DynamicModule {
    return {
      module: KnexExampleModule,
      imports: [
        DatabaseModule.forRoot(connectionString),
        IdempotencyModule.forRoot({ store: pgPoolStore({ connection: connectionString }) }),
      ],
      controllers: [OrdersController],
    };
  }
}

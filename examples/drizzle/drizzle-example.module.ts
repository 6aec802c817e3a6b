import { type DynamicModule, Inject, Module, type OnApplicationShutdown } from '@nestjs/common';
import { drizzle } from 'drizzle-orm/node-postgres';
import { IdempotencyModule } from 'nestjs-idempotency';
import { pgPoolStore } from 'nestjs-idempotency/pg';
import { Pool } from 'pg';
import { OrdersController } from './orders.controller';
import { DRIZZLE, PG_POOL } from './tokens';

/** The app's pool and its Drizzle database; the idempotency keys share the pool. */
@Module({})
class DatabaseModule implements OnApplicationShutdown {
  constructor(@Inject(PG_POOL) private readonly pool: Pool) {}

  static forRoot(connectionString: string): DynamicModule {
    return {
      module: DatabaseModule,
      global: true,
      providers: [
        { provide: PG_POOL, useFactory: () => new Pool({ connectionString }) },
        { provide: DRIZZLE, useFactory: (pool: Pool) => drizzle(pool), inject: [PG_POOL] },
      ],
      exports: [PG_POOL, DRIZZLE],
    };
  }

  onApplicationShutdown(): Promise<void> {
    return this.pool.end();
  }
}

/** An app on Drizzle (node-postgres) with `POST /orders` run once per key. */
@Module({})
export class DrizzleExampleModule {
  static forRoot(connectionString: string): DynamicModule {
    return {
      module: DrizzleExampleModule,
      imports: [
        DatabaseModule.forRoot(connectionString),
        IdempotencyModule.forRoot({ store: pgPoolStore({ poolToken: PG_POOL }) }),
      ],
      controllers: [OrdersController],
    };
  }
}

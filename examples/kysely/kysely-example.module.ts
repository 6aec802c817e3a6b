import { type DynamicModule, Inject, Module, type OnApplicationShutdown } from '@nestjs/common';
import { Kysely, PostgresDialect } from 'kysely';
import { IdempotencyModule } from 'nestjs-idempotency';
import { pgPoolStore } from 'nestjs-idempotency/pg';
import { Pool } from 'pg';
import { type Database, KYSELY, PG_POOL } from './database';
import { OrdersController } from './orders.controller';

/** The app's pool and its Kysely instance; the idempotency keys share the pool. */
@Module({})
class DatabaseModule implements OnApplicationShutdown {
  constructor(@Inject(KYSELY) private readonly db: Kysely<Database>) {}

  static forRoot(connectionString: string): DynamicModule {
    return {
      module: DatabaseModule,
      global: true,
      providers: [
        { provide: PG_POOL, useFactory: () => new Pool({ connectionString }) },
        {
          provide: KYSELY,
          useFactory: (pool: Pool) =>
            new Kysely<Database>({ dialect: new PostgresDialect({ pool }) }),
          inject: [PG_POOL],
        },
      ],
      exports: [PG_POOL, KYSELY],
    };
  }

  /** Kysely ends the pool it was given. */
  onApplicationShutdown(): Promise<void> {
    return this.db.destroy();
  }
}

/** An app on Kysely with `POST /orders` run once per key. */
@Module({})
export class KyselyExampleModule {
  static forRoot(connectionString: string): DynamicModule {
    return {
      module: KyselyExampleModule,
      imports: [
        DatabaseModule.forRoot(connectionString),
        IdempotencyModule.forRoot({ store: pgPoolStore({ poolToken: PG_POOL }) }),
      ],
      controllers: [OrdersController],
    };
  }
}

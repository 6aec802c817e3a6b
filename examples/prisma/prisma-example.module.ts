import { type DynamicModule, Inject, Module, type OnApplicationShutdown } from '@nestjs/common';
import { PrismaPg } from '@prisma/adapter-pg';
import { IdempotencyModule } from 'nestjs-idempotency';
import { pgPoolStore } from 'nestjs-idempotency/pg';
import { Pool } from 'pg';
import { PrismaClient } from './generated/client';
import { IDEMPOTENCY_TABLE } from './idempotency-table';
import { OrdersController } from './orders.controller';
import { PG_POOL, PRISMA } from './tokens';

/**
 * The app's pool and a Prisma client on it, through Prisma's driver adapter for pg; the
 * idempotency keys share the pool.
 */
@Module({})
class DatabaseModule implements OnApplicationShutdown {
  constructor(
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(PRISMA) private readonly prisma: PrismaClient,
  ) {}

  static forRoot(connectionString: string): DynamicModule {
    return {
      module: DatabaseModule,
      global: true,
      providers: [
        { provide: PG_POOL, useFactory: () => new Pool({ connectionString }) },
        {
          provide: PRISMA,
          useFactory: (pool: Pool) => new PrismaClient({ adapter: new PrismaPg(pool) }),
          inject: [PG_POOL],
        },
      ],
      exports: [PG_POOL, PRISMA],
    };
  }

  /** The adapter leaves a pool it was given open: it is ended here, after the client. */
  async onApplicationShutdown(): Promise<void> {
    await this.prisma.$disconnect();
    await this.pool.end();
  }
}

/** An app on Prisma (`@prisma/adapter-pg`) with `POST /orders` run once per key. */
@Module({})
export class PrismaExampleModule {
  static forRoot(connectionString: string): DynamicModule {
    return {
      module: PrismaExampleModule,
      imports: [
        DatabaseModule.forRoot(connectionString),
        IdempotencyModule.forRoot({
          store: pgPoolStore({ poolToken: PG_POOL, tableName: IDEMPOTENCY_TABLE }),
        }),
      ],
      controllers: [OrdersController],
    };
  }
}

import { type DynamicModule, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { IdempotencyModule } from 'nestjs-idempotency';
import { postgresStore } from 'nestjs-idempotency/postgres';
import { Order } from './order.entity';
import { OrdersController } from './orders.controller';

/**
 * An app on TypeORM with `POST /orders` run once per key, in transactional mode: the store runs
 * on the DataSource, and the handler writes through the request's EntityManager.
 */
@Module({})
export class TypeOrmExampleModule {
  static forRoot(url: string): DynamicModule {
    return {
      module: TypeOrmExampleModule,
      imports: [
        TypeOrmModule.forRoot({ type: 'postgres', url, entities: [Order] }),
        IdempotencyModule.forRoot({ store: postgresStore() }),
      ],
      controllers: [OrdersController],
    };
  }
}

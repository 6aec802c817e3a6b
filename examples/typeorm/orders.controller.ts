import { Body, Controller, Post } from '@nestjs/common';
import { Idempotent } from 'nestjs-idempotency';
import { IdempotentEntityManager } from 'nestjs-idempotency/postgres';
import type { EntityManager } from 'typeorm';
import type { CreateOrder } from '../orders.sql';
import { Order } from './order.entity';

@Controller('orders')
export class OrdersController {
  /**
   * Runs once per Idempotency-Key, in one transaction with the key's record: the order and the
   * stored answer commit together, or neither does. A retry gets the stored answer.
   */
  @Post()
  @Idempotent({ transactional: true })
  create(@Body() order: CreateOrder, @IdempotentEntityManager() manager: EntityManager) {
    return manager.getRepository(Order).save({ customer: order.customer, amount: order.amount });
  }
}

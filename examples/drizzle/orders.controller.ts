import { Body, Controller, Inject, Post } from '@nestjs/common';
import type { NodePgDatabase } from 'drizzle-orm/node-postgres';
import { Idempotent } from 'nestjs-idempotency';
import type { CreateOrder } from '../orders.sql';
import { DRIZZLE } from './tokens';
import { orders } from './orders.table';

@Controller('orders')
export class OrdersController {
  constructor(@Inject(DRIZZLE) private readonly db: NodePgDatabase) {}

  /** Runs once per Idempotency-Key; a retry gets the stored answer. */
  @Post()
  @Idempotent()
  async create(@Body() order: CreateOrder) {
    const [created] = await this.db
      .insert(orders)
      .values({ customer: order.customer, amount: order.amount })
      .returning();
    return created;
  }
}

import { Body, Controller, Inject, Post } from '@nestjs/common';
import type { Knex } from 'knex';
import { Idempotent } from 'nestjs-idempotency';
import type { CreateOrder } from '../orders.sql';
import { KNEX } from './tokens';

@Controller('orders')
export class OrdersController {
  constructor(@Inject(KNEX) private readonly knex: Knex) {}

  /** Runs once per Idempotency-Key; a retry gets the stored answer. */
  @Post()
  @Idempotent()
  async create(@Body() order: CreateOrder) {
    const [created] = await this.knex('orders')
      .insert({ customer: order.customer, amount: order.amount })
      .returning(['id', 'customer', 'amount']);
    return created as { id: number; customer: string; amount: number };
  }
}

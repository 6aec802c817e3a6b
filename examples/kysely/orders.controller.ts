import { Body, Controller, Inject, Post } from '@nestjs/common';
import type { Kysely } from 'kysely';
import { Idempotent } from 'nestjs-idempotency';
import type { CreateOrder } from '../orders.sql';
import { type Database, KYSELY } from './database';

@Controller('orders')
export class OrdersController {
  constructor(@Inject(KYSELY) private readonly db: Kysely<Database>) {}

  /** Runs once per Idempotency-Key; a retry gets the stored answer. */
  @Post()
  @Idempotent()
  create(@Body() order: CreateOrder) {
    return this.db
      .insertInto('orders')
      .values({ customer: order.customer, amount: order.amount })
      .returningAll()
      .executeTakeFirstOrThrow();
  }
}

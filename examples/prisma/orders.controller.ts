import { Body, Controller, Inject, Post } from '@nestjs/common';
import { Idempotent } from 'nestjs-idempotency';
import type { CreateOrder } from '../orders.sql';
import type { PrismaClient } from './generated/client';
import { PRISMA } from './tokens';

@Controller('orders')
export class OrdersController {
  constructor(@Inject(PRISMA) private readonly prisma: PrismaClient) {}

  /** Runs once per Idempotency-Key; a retry gets the stored answer. */
  @Post()
  @Idempotent()
  create(@Body() order: CreateOrder) {
    return this.prisma.order.create({
      data: { customer: order.customer, amount: order.amount },
    });
  }
}

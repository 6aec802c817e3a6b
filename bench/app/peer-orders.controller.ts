import { Body, Controller, Headers, Post } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Idempotent } from '@node-idempotency/nestjs';
import type { Repository } from 'typeorm';
import { BenchOrder } from './bench-order.entity';
import { type OrderReceipt, insertOrder } from './bench-orders.service';

/**
 * The lease route of the side-by-side, on `@node-idempotency/nestjs`: the same insert as
 * `BenchOrdersController.lease`, under the other package's `@Idempotent()` with its defaults.
 */
@Controller()
export class PeerOrdersController {
  constructor(@InjectRepository(BenchOrder) private readonly orders: Repository<BenchOrder>) {}

  @Post('lease')
  @Idempotent()
  lease(
    @Headers('idempotency-key') key: string | undefined,
    @Body() input: unknown,
  ): Promise<OrderReceipt> {
    return insertOrder(this.orders, key, input);
  }
}

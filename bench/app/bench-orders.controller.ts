import { Body, Controller, Headers, Post } from '@nestjs/common';
import { Idempotent } from '../../lib';
import { BenchOrdersService, type OrderReceipt } from './bench-orders.service';

const KEY_HEADER = 'idempotency-key';

/**
 * The benchmarked routes. Each inserts exactly one row, so the only difference between them is
 * how (and whether) the idempotency module is involved. Their shape is fixed: results of
 * different runs are only comparable while it stays so.
 */
@Controller()
export class BenchOrdersController {
  constructor(private readonly orders: BenchOrdersService) {}

  /** (a) The baseline: no idempotency. In the app without a global interceptor, none runs. */
  @Post('plain')
  plain(
    @Headers(KEY_HEADER) key: string | undefined,
    @Body() input: unknown,
  ): Promise<OrderReceipt> {
    return this.orders.create(key, input);
  }

  /** (g) Not decorated; benchmarked in the app that registers the interceptor globally. */
  @Post('plain-global')
  plainGlobal(
    @Headers(KEY_HEADER) key: string | undefined,
    @Body() input: unknown,
  ): Promise<OrderReceipt> {
    return this.orders.create(key, input);
  }

  /**
   * (a') The baseline of the app whose transactional routes run in nestjs-cls transactions: the
   * same insert in a transaction of its own (`Propagation.RequiresNew`), no idempotency.
   */
  @Post('plain-tx')
  plainInTransaction(
    @Headers(KEY_HEADER) key: string | undefined,
    @Body() input: unknown,
  ): Promise<OrderReceipt> {
    return this.orders.createInOwnTransaction(key, input);
  }

  /** (b) Lease mode: claim, insert, complete. */
  @Post('lease')
  @Idempotent()
  lease(
    @Headers(KEY_HEADER) key: string | undefined,
    @Body() input: unknown,
  ): Promise<OrderReceipt> {
    return this.orders.create(key, input);
  }

  /** (c) Transactional mode: the insert commits together with the claim and the response. */
  @Post('tx')
  @Idempotent({ transactional: true })
  transactional(
    @Headers(KEY_HEADER) key: string | undefined,
    @Body() input: unknown,
  ): Promise<OrderReceipt> {
    return this.orders.createInTransaction(key, input);
  }
}

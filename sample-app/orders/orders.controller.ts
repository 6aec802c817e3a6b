import { Body, Controller, HttpException, HttpStatus, Post } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { IdempotencySteps, Idempotent } from '../../lib';
import { type CreateOrderInput, ParseCreateOrderPipe } from './create-order.input';
import type { OrderView } from './order.view';
import { OrdersCrashHook } from './orders-crash-hook';
import { PaymentProviderClient } from './payment-provider.client';
import { ShipmentsService } from './shipments.service';
import { StockService } from './stock.service';

/**
 * `POST /orders`: reserve stock (here), charge the card (at the payment provider), record the
 * shipment (here). Each step's result is a recovery point on the order's key: a retry after a
 * crash or a provider outage resumes after the last one. The local steps commit with their
 * recovery point (`runInTransaction`); the charge, which no transaction of ours can hold, goes out
 * with the same derived key on every attempt, so the provider charges once.
 */
@Controller('orders')
export class OrdersController {
  constructor(
    private readonly steps: IdempotencySteps,
    private readonly stock: StockService,
    private readonly provider: PaymentProviderClient,
    private readonly shipments: ShipmentsService,
    private readonly crash: OrdersCrashHook,
  ) {}

  @Post()
  @Idempotent()
  async create(@Body(ParseCreateOrderPipe) input: CreateOrderInput): Promise<OrderView> {
    this.crash.at('before-first-step');
    // Local writes are atomic phases: they commit with their recovery point, or not at all.
    const order = await this.steps.runInTransaction('reserve', (tx: EntityManager, stepKey) =>
      this.stock.reserve(tx, stepKey, input),
    );
    const payment = await this.steps.run('charge', async (stepKey) => {
      const outcome = await this.provider.charge(stepKey, {
        amount: order.amount,
        currency: order.currency,
        card: input.card,
        reference: order.id,
      });
      this.crash.at('after-charge');
      return outcome;
    });
    this.crash.at('after-recovery-point');
    if (payment.status === 'declined') {
      // The decline is the charge step's result: a retry after a crash from here on resumes with
      // it, instead of charging again, and puts the stock back once.
      await this.steps.runInTransaction('release-stock', (tx: EntityManager) =>
        this.stock.release(tx, order.id),
      );
      throw new HttpException(
        { error: 'card_declined', orderId: order.id },
        HttpStatus.PAYMENT_REQUIRED,
      );
    }
    const shipment = await this.steps.runInTransaction('ship', (tx: EntityManager) =>
      this.shipments.record(tx, order.id, payment.chargeId),
    );
    this.crash.at('before-response');
    return { ...order, chargeId: payment.chargeId, shipmentId: shipment.id, status: 'confirmed' };
  }
}

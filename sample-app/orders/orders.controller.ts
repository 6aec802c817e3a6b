import { Body, Controller, HttpException, HttpStatus, Post } from '@nestjs/common';
import { DataSource } from 'typeorm';
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
 * crash or a provider outage resumes after the last one, and the charge goes out with the same
 * derived key every time, so the provider charges once.
 */
@Controller('orders')
export class OrdersController {
  constructor(
    private readonly steps: IdempotencySteps,
    private readonly dataSource: DataSource,
    private readonly stock: StockService,
    private readonly provider: PaymentProviderClient,
    private readonly shipments: ShipmentsService,
    private readonly crash: OrdersCrashHook,
  ) {}

  @Post()
  @Idempotent()
  async create(@Body(ParseCreateOrderPipe) input: CreateOrderInput): Promise<OrderView> {
    this.crash.at('before-first-step');
    const order = await this.steps.run('reserve', (stepKey) =>
      this.dataSource.transaction((manager) => this.stock.reserve(manager, stepKey, input)),
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
      // Recorded in the charge's place, as a compensation: a retry after a crash here finds it done.
      await this.steps.run('release-stock', () =>
        this.dataSource.transaction((manager) => this.stock.release(manager, order.id)),
      );
      throw new HttpException(
        { error: 'card_declined', orderId: order.id },
        HttpStatus.PAYMENT_REQUIRED,
      );
    }
    const shipment = await this.steps.run('ship', () =>
      this.shipments.record(this.dataSource.manager, order.id, payment.chargeId),
    );
    this.crash.at('before-response');
    return { ...order, chargeId: payment.chargeId, shipmentId: shipment.id, status: 'confirmed' };
  }
}

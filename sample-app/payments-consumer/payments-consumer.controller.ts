import { Controller, UseInterceptors } from '@nestjs/common';
import { Ctx, EventPattern, Payload } from '@nestjs/microservices';
import { Idempotent } from '../../lib';
import { IdempotencyTransaction } from '../../lib/postgres';
import { Payment } from '../payments/payment.entity';
import { InFlightDeliveries } from './in-flight-deliveries';
import { PAYMENTS_REQUESTED } from './payments-consumer.constants';
import { PaymentsConsumerCrashHook } from './payments-consumer-crash-hook';
import { PaymentRequested, parsePaymentRequested } from './payment-requested.message';

/**
 * Creates a payment per `payments.requested` message, exactly once per message id. The payment is
 * written in the module's transaction, so it commits with the message's record; the delivery is
 * acked only after that commit, and a redelivery (the consumer died first) finds the record.
 */
@Controller()
@UseInterceptors(InFlightDeliveries)
export class PaymentsConsumerController {
  constructor(
    private readonly transaction: IdempotencyTransaction,
    private readonly crashHook: PaymentsConsumerCrashHook,
  ) {}

  @EventPattern(PAYMENTS_REQUESTED)
  @Idempotent({ transactional: true })
  async requested(
    @Payload(parsePaymentRequested) input: PaymentRequested,
    @Ctx() context: unknown,
  ): Promise<void> {
    this.crashHook.beforeAck(context);
    // Messages have no client: their payments belong to the anonymous one, as GET /payments lists.
    await this.transaction.getRepository(Payment).insert({
      clientId: '',
      amount: input.amount,
      currency: input.currency,
      reference: input.reference ?? null,
      status: 'succeeded',
    });
    this.crashHook.at('after-write');
  }
}

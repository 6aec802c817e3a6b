import { HttpException, HttpStatus, Inject, Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Repository } from 'typeorm';
import { SAMPLE_APP_CONFIG } from '../sample-app.constants';
import type { SampleAppConfig } from '../config';
import type { CreatePaymentInput } from './create-payment.input';
import { Payment } from './payment.entity';

/** Largest amount the simulated card network accepts. */
const CARD_LIMIT = 1_000_000;

/** A payment as the API returns it. */
export interface PaymentView {
  id: string;
  amount: number;
  currency: string;
  reference: string | null;
  status: 'succeeded';
  createdAt: string;
}

@Injectable()
export class PaymentsService {
  constructor(
    @InjectRepository(Payment) private readonly payments: Repository<Payment>,
    @Inject(SAMPLE_APP_CONFIG) private readonly config: SampleAppConfig,
  ) {}

  /** Charges the card (simulated: a delay, and a decline above the limit) and records it. */
  async charge(clientId: string, input: CreatePaymentInput): Promise<PaymentView> {
    if (this.config.paymentLatencyMs > 0) {
      await sleep(this.config.paymentLatencyMs);
    }
    if (input.amount > CARD_LIMIT) {
      throw new HttpException({ error: 'card_declined' }, HttpStatus.PAYMENT_REQUIRED);
    }
    const payment = await this.payments.save(
      this.payments.create({ clientId, ...input, status: 'succeeded' }),
    );
    return toView(payment);
  }

  async findByReference(clientId: string, reference: string): Promise<PaymentView[]> {
    const found = await this.payments.find({
      where: { clientId, reference },
      order: { createdAt: 'ASC' },
    });
    return found.map(toView);
  }
}

function toView(payment: Payment): PaymentView {
  return {
    id: payment.id,
    amount: payment.amount,
    currency: payment.currency.trim(),
    reference: payment.reference,
    status: payment.status,
    createdAt: payment.createdAt.toISOString(),
  };
}

import { HttpException, HttpStatus, Inject, Injectable, Logger } from '@nestjs/common';
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
  private readonly logger = new Logger(PaymentsService.name);

  constructor(
    @InjectRepository(Payment) private readonly payments: Repository<Payment>,
    @Inject(SAMPLE_APP_CONFIG) private readonly config: SampleAppConfig,
  ) {}

  /**
   * Charges the card (simulated: a delay, and a decline above the limit) and records it. Each
   * execution is also logged in `payment_attempts` (start before anything else, end however it
   * ends), so that executions per key can be counted from the database.
   */
  async charge(
    clientId: string,
    idempotencyKey: string | undefined,
    input: CreatePaymentInput,
  ): Promise<PaymentView> {
    const attempt = await this.startAttempt(clientId, idempotencyKey);
    try {
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
    } finally {
      await this.finishAttempt(attempt);
    }
  }

  /** Autocommitted: the row exists as soon as the execution starts, whatever happens next. */
  private async startAttempt(
    clientId: string,
    idempotencyKey: string | undefined,
  ): Promise<string> {
    const rows: { id: string }[] = await this.payments.manager.query(
      'INSERT INTO payment_attempts (client_id, idempotency_key, pid) VALUES ($1, $2, $3) RETURNING id',
      [clientId, idempotencyKey ?? null, process.pid],
    );
    return rows[0].id;
  }

  /**
   * Best effort: a payment that went through must not turn into a 500 (and a released key) because
   * its bookkeeping row could not be closed. Such a row stays open, as if the execution never ended.
   */
  private async finishAttempt(id: string): Promise<void> {
    try {
      await this.payments.manager.query(
        'UPDATE payment_attempts SET finished_at = clock_timestamp() WHERE id = $1',
        [id],
      );
    } catch (error) {
      this.logger.warn(`Closing payment attempt ${id} failed: ${String(error)}`);
    }
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

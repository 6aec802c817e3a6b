import { HttpException, HttpStatus, Inject, Injectable, Logger } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SampleAppConfig } from '../config';
import { SAMPLE_APP_CONFIG } from '../sample-app.constants';
import { OrdersCrashHook } from './orders-crash-hook';

/** What an order asks the payment provider to charge. */
export interface ChargeRequest {
  amount: number;
  currency: string;
  card: string;
  /** The order's id. */
  reference: string;
}

/**
 * The provider's final answer to a charge: charged, or declined. Both are results (recorded as the
 * step's), so a retry after a decline resumes with the decline instead of asking again.
 */
export type ChargeOutcome =
  { status: 'charged'; chargeId: string } | { status: 'declined'; reason: string };

/**
 * With `ORDERS_CRASH_AT=during-charge`: how long after sending the charge the process dies, long
 * enough for the request to reach the provider (which the tests make slower than this).
 */
const DURING_CHARGE_CRASH_MS = 200;

/**
 * The payment provider's HTTP API (`POST /charges`). Every answer that may change on a retry (a
 * timeout, the provider unreachable, a 5xx, its key in flight) is a 503 for the order, which
 * releases the order's key with its steps: the retry charges again with the same key, and the
 * provider answers it once.
 */
@Injectable()
export class PaymentProviderClient {
  private readonly logger = new Logger(PaymentProviderClient.name);

  constructor(
    @Inject(SAMPLE_APP_CONFIG) private readonly config: SampleAppConfig,
    private readonly crash: OrdersCrashHook,
  ) {}

  /** Charges `charge` with `idempotencyKey` as the provider's `Idempotency-Key`. */
  async charge(idempotencyKey: string, charge: ChargeRequest): Promise<ChargeOutcome> {
    const { paymentProviderUrl: url, paymentProviderTimeoutMs: timeoutMs } = this.config;
    if (url === undefined) {
      throw unavailable('no payment provider is configured');
    }
    let response: Response;
    try {
      const answer = fetch(`${url}/charges`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': idempotencyKey },
        body: JSON.stringify(charge),
        signal: AbortSignal.timeout(timeoutMs),
      });
      if (this.crash.armed('during-charge')) {
        answer.catch(() => undefined);
        await sleep(DURING_CHARGE_CRASH_MS);
        this.crash.at('during-charge');
      }
      response = await answer;
    } catch (error) {
      throw unavailable(`the charge did not answer: ${String(error)}`, this.logger);
    }
    const body = (await response.json().catch(() => undefined)) as
      { id?: unknown; error?: unknown; amount?: unknown; reference?: unknown } | undefined;
    if (response.status === 402) {
      return { status: 'declined', reason: String(body?.error ?? 'declined') };
    }
    if (response.status === 409 || response.status >= 500) {
      throw unavailable(`the charge answered ${response.status}`, this.logger);
    }
    if (body === undefined) {
      // Cut off (the timeout, a dropped connection): the retry asks again with the same key.
      throw unavailable(`its answer (${response.status}) could not be read`, this.logger);
    }
    if (
      (response.status === 200 || response.status === 201) &&
      typeof body.id === 'string' &&
      // A charge of another request is no charge of this order.
      body.amount === charge.amount &&
      body.reference === charge.reference
    ) {
      return { status: 'charged', chargeId: body.id };
    }
    this.logger.error(`The payment provider answered ${response.status}: ${JSON.stringify(body)}`);
    throw new HttpException({ error: 'payment_provider_error' }, HttpStatus.BAD_GATEWAY);
  }
}

function unavailable(why: string, logger?: Logger): HttpException {
  logger?.warn(`Payment provider unavailable: ${why}`);
  return new HttpException(
    { error: 'payment_provider_unavailable' },
    HttpStatus.SERVICE_UNAVAILABLE,
  );
}

import { HttpException, HttpStatus, Injectable } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { PROVIDER_DATA_SOURCE } from '../payment-provider.constants';
import { CardBehavioursService } from '../control/card-behaviours.service';
import type { CreateChargeInput } from './create-charge.input';

/** The test card that always declines. */
export const DECLINED_CARD = 'tok_declined';

/** A charge as the provider's API returns it. */
export interface ChargeView {
  id: string;
  amount: number;
  currency: string;
  card: string;
  reference: string;
  status: 'succeeded';
  createdAt: string;
}

interface ChargeRow {
  id: string;
  amount: number;
  currency: string;
  card: string;
  reference: string;
  created_at: Date;
}

const COLUMNS = 'id, amount, currency, card, reference, created_at';

/** Charges cards, once per idempotency key, and behaves as each card's test hooks say. */
@Injectable()
export class ChargesService {
  constructor(
    @InjectDataSource(PROVIDER_DATA_SOURCE) private readonly dataSource: DataSource,
    private readonly behaviours: CardBehavioursService,
  ) {}

  async charge(idempotencyKey: string, input: CreateChargeInput): Promise<ChargeView> {
    if (input.card === DECLINED_CARD) {
      throw new HttpException({ error: 'card_declined' }, HttpStatus.PAYMENT_REQUIRED);
    }
    const plan = this.behaviours.take(input.card);
    if (plan.fail) {
      throw new HttpException({ error: 'provider_unavailable' }, HttpStatus.SERVICE_UNAVAILABLE);
    }
    if (plan.delayMs > 0) {
      await sleep(plan.delayMs);
    }
    const charge = await this.insertOnce(idempotencyKey, input);
    if (plan.crashAfterCharging) {
      // The charge is committed; the answer never leaves, and the module never stores it.
      process.kill(process.pid, 'SIGKILL');
    }
    return toView(charge);
  }

  /**
   * The charge of `idempotencyKey`: inserted, or the one an earlier run of the same key
   * committed before its process died (see the migration's note on the unique key).
   */
  private async insertOnce(idempotencyKey: string, input: CreateChargeInput): Promise<ChargeRow> {
    const inserted: ChargeRow[] = await this.dataSource.query(
      `INSERT INTO charges (idempotency_key, amount, currency, card, reference)
       VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (idempotency_key) DO NOTHING
       RETURNING ${COLUMNS}`,
      [idempotencyKey, input.amount, input.currency, input.card, input.reference],
    );
    if (inserted.length > 0) {
      return inserted[0];
    }
    const existing: ChargeRow[] = await this.dataSource.query(
      `SELECT ${COLUMNS} FROM charges WHERE idempotency_key = $1`,
      [idempotencyKey],
    );
    const charge = existing[0];
    // The module refuses another request with a key it still holds (422); a charge outlives the
    // key's record, and must not answer another request either.
    if (
      charge.amount !== input.amount ||
      charge.currency.trim() !== input.currency ||
      charge.card !== input.card ||
      charge.reference !== input.reference
    ) {
      throw new HttpException(
        { error: 'idempotency_key_reused', message: 'This key charged another request.' },
        HttpStatus.UNPROCESSABLE_ENTITY,
      );
    }
    return charge;
  }

  async findByReference(reference: string): Promise<ChargeView[]> {
    const rows: ChargeRow[] = await this.dataSource.query(
      `SELECT ${COLUMNS} FROM charges WHERE reference = $1 ORDER BY created_at`,
      [reference],
    );
    return rows.map(toView);
  }
}

function toView(row: ChargeRow): ChargeView {
  return {
    id: row.id,
    amount: row.amount,
    currency: row.currency.trim(),
    card: row.card,
    reference: row.reference,
    status: 'succeeded',
    createdAt: row.created_at.toISOString(),
  };
}

import { HttpException, HttpStatus, Inject, Injectable } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import { IdempotencyTransaction } from '../../lib/postgres';
import { Account } from '../accounts/account.entity';
import type { SampleAppConfig } from '../config';
import { SAMPLE_APP_CONFIG } from '../sample-app.constants';
import type { CreateTransferInput } from './create-transfer.input';
import { Transfer, type TransferView } from './transfer.entity';

/**
 * Moves money between two accounts. Every write goes through the request's idempotency
 * transaction (`IdempotencyTransaction`), so the debit, the credit, the transfer row and the stored
 * response commit together, or none of them does.
 */
@Injectable()
export class TransfersService {
  constructor(
    private readonly transaction: IdempotencyTransaction,
    @Inject(SAMPLE_APP_CONFIG) private readonly config: SampleAppConfig,
  ) {}

  async transfer(input: CreateTransferInput): Promise<TransferView> {
    const accounts = this.transaction.getRepository(Account);
    // Both rows are locked in id order, so opposite transfers between two accounts cannot deadlock.
    const locked = await accounts
      .createQueryBuilder('account')
      .setLock('pessimistic_write')
      .where('account.id IN (:...ids)', { ids: [input.from, input.to] })
      .orderBy('account.id')
      .getMany();
    if (locked.length !== 2) {
      throw new HttpException({ error: 'account_not_found' }, HttpStatus.NOT_FOUND);
    }
    const from = locked.find((account) => account.id === input.from);
    if (!from || from.balance < input.amount) {
      throw new HttpException({ error: 'insufficient_funds' }, HttpStatus.BAD_REQUEST);
    }
    await accounts.decrement({ id: input.from }, 'balance', input.amount);
    if (this.config.paymentLatencyMs > 0) {
      await sleep(this.config.paymentLatencyMs);
    }
    await accounts.increment({ id: input.to }, 'balance', input.amount);
    const transfer = await this.transaction
      .getRepository(Transfer)
      .save({ from: input.from, to: input.to, amount: input.amount });
    return { id: transfer.id, from: transfer.from, to: transfer.to, amount: transfer.amount };
  }
}

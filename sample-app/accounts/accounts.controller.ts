import {
  BadRequestException,
  Body,
  Controller,
  Get,
  NotFoundException,
  Param,
  ParseUUIDPipe,
  Post,
} from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { Repository } from 'typeorm';
import { Account, type AccountView } from './account.entity';

/** Accounts to move money between. Creating one is not idempotent (no key needed). */
@Controller('accounts')
export class AccountsController {
  constructor(@InjectRepository(Account) private readonly accounts: Repository<Account>) {}

  @Post()
  async create(@Body() body: unknown): Promise<AccountView> {
    const balance = (body as { balance?: unknown } | undefined)?.balance;
    if (!Number.isSafeInteger(balance) || (balance as number) < 0) {
      throw new BadRequestException(['balance must be an integer of at least 0']);
    }
    const account = await this.accounts.save(this.accounts.create({ balance: balance as number }));
    return { id: account.id, balance: account.balance };
  }

  @Get(':id')
  async find(@Param('id', ParseUUIDPipe) id: string): Promise<AccountView> {
    const account = await this.accounts.findOneBy({ id });
    if (!account) {
      throw new NotFoundException({ error: 'account_not_found' });
    }
    return { id: account.id, balance: account.balance };
  }
}

import { Body, Controller, Post } from '@nestjs/common';
import { Idempotent } from '../../lib';
import { type CreateTransferInput, ParseCreateTransferPipe } from './create-transfer.input';
import type { TransferView } from './transfer.entity';
import { TransfersService } from './transfers.service';

@Controller('transfers')
export class TransfersController {
  constructor(private readonly transfers: TransfersService) {}

  /** Idempotent and transactional: the money moves exactly once per key, or not at all. */
  @Post()
  @Idempotent({ transactional: true })
  create(@Body(ParseCreateTransferPipe) input: CreateTransferInput): Promise<TransferView> {
    return this.transfers.transfer(input);
  }
}

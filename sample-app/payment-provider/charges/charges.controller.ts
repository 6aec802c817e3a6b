import { Body, Controller, Get, Headers, Post, Query } from '@nestjs/common';
import { Idempotent } from '../../../lib';
import { type ChargeView, ChargesService } from './charges.service';
import { type CreateChargeInput, ParseCreateChargePipe } from './create-charge.input';

/** The provider's API: charges, once per `Idempotency-Key`, and the charges of a reference. */
@Controller('charges')
export class ChargesController {
  constructor(private readonly charges: ChargesService) {}

  /**
   * Lease mode: the charge calls no other service, and its unique key covers the one gap lease
   * mode leaves (a crash after the commit, before the answer is stored).
   */
  @Post()
  @Idempotent()
  create(
    @Body(ParseCreateChargePipe) input: CreateChargeInput,
    @Headers('idempotency-key') idempotencyKey: string,
  ): Promise<ChargeView> {
    return this.charges.charge(idempotencyKey, input);
  }

  @Get()
  list(@Query('reference') reference: string | undefined): Promise<ChargeView[]> {
    return this.charges.findByReference(reference ?? '');
  }
}

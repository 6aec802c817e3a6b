import { ValidationPipe } from '@nestjs/common';
import { IsInt, IsOptional, IsString, Matches, Max, MaxLength, Min } from 'class-validator';

/**
 * The data of a `payments.requested` message: a payment to record, with the fields `POST /payments`
 * takes (the consumer records it; it does not run the card rules of `POST /payments`).
 */
export class PaymentRequested {
  @IsInt()
  @Min(1)
  // The column is a PostgreSQL integer: a larger amount would fail on every redelivery.
  @Max(2_147_483_647)
  amount!: number;

  /** ISO 4217, upper case. */
  @Matches(/^[A-Z]{3}$/)
  currency!: string;

  @IsOptional()
  @IsString()
  @MaxLength(255)
  reference?: string | null;
}

/**
 * Refuses a payload that is not a `PaymentRequested` with a 400, which the module dead-letters:
 * no redelivery could make such a message valid.
 */
export const parsePaymentRequested = new ValidationPipe({
  transform: true,
  whitelist: true,
  forbidNonWhitelisted: true,
  expectedType: PaymentRequested,
});

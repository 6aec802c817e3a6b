import { ValidationPipe } from '@nestjs/common';
import { IsInt, IsOptional, IsString, Matches, MaxLength, Min } from 'class-validator';

/** The data of a `payments.requested` message: a payment to create, as `POST /payments` takes it. */
export class PaymentRequested {
  @IsInt()
  @Min(1)
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

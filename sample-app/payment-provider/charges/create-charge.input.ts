import { BadRequestException, Injectable, type PipeTransform } from '@nestjs/common';

/** The body of `POST /charges`, validated. */
export interface CreateChargeInput {
  amount: number;
  currency: string;
  /** A test card token: `tok_declined` declines, any other is charged. */
  card: string;
  /** The merchant's reference for the charge (the sample app sends its order id). */
  reference: string;
}

const TOKEN = /^[A-Za-z0-9_-]{1,64}$/;

/** Validates the body of `POST /charges`; anything else is a 400 listing what is wrong. */
@Injectable()
export class ParseCreateChargePipe implements PipeTransform<unknown, CreateChargeInput> {
  transform(body: unknown): CreateChargeInput {
    const input = (typeof body === 'object' && body !== null ? body : {}) as Record<
      string,
      unknown
    >;
    const errors: string[] = [];
    if (!Number.isSafeInteger(input.amount) || (input.amount as number) <= 0) {
      errors.push('amount must be an integer greater than 0');
    }
    if (typeof input.currency !== 'string' || !/^[A-Z]{3}$/.test(input.currency)) {
      errors.push('currency must be three upper-case letters (ISO 4217)');
    }
    if (typeof input.card !== 'string' || !TOKEN.test(input.card)) {
      errors.push('card must be a token of 1 to 64 letters, digits, _ or -');
    }
    if (
      typeof input.reference !== 'string' ||
      input.reference.length === 0 ||
      input.reference.length > 255
    ) {
      errors.push('reference must be a string of 1 to 255 characters');
    }
    if (errors.length > 0) {
      throw new BadRequestException(errors);
    }
    return input as unknown as CreateChargeInput;
  }
}

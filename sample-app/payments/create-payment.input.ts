import { BadRequestException, Injectable, type PipeTransform } from '@nestjs/common';

/** The body of `POST /payments`, validated. */
export interface CreatePaymentInput {
  amount: number;
  currency: string;
  reference: string | null;
}

/** Validates the body of `POST /payments`; anything else is a 400 listing what is wrong. */
@Injectable()
export class ParseCreatePaymentPipe implements PipeTransform<unknown, CreatePaymentInput> {
  transform(body: unknown): CreatePaymentInput {
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
    const reference = input.reference;
    if (reference !== undefined && reference !== null) {
      if (typeof reference !== 'string' || reference.length > 255) {
        errors.push('reference must be a string of at most 255 characters');
      }
    }
    if (errors.length > 0) {
      throw new BadRequestException(errors);
    }
    return {
      amount: input.amount as number,
      currency: input.currency as string,
      reference: (reference as string | undefined) ?? null,
    };
  }
}

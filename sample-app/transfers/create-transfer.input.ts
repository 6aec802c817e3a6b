import { BadRequestException, Injectable, type PipeTransform } from '@nestjs/common';

/** The body of `POST /transfers`, validated. */
export interface CreateTransferInput {
  from: string;
  to: string;
  amount: number;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Validates the body of `POST /transfers`; anything else is a 400 listing what is wrong. */
@Injectable()
export class ParseCreateTransferPipe implements PipeTransform<unknown, CreateTransferInput> {
  transform(body: unknown): CreateTransferInput {
    const input = (typeof body === 'object' && body !== null ? body : {}) as Record<
      string,
      unknown
    >;
    const errors: string[] = [];
    for (const field of ['from', 'to'] as const) {
      if (typeof input[field] !== 'string' || !UUID.test(input[field] as string)) {
        errors.push(`${field} must be an account id (uuid)`);
      }
    }
    if (errors.length === 0 && input.from === input.to) {
      errors.push('from and to must be different accounts');
    }
    if (!Number.isSafeInteger(input.amount) || (input.amount as number) <= 0) {
      errors.push('amount must be an integer greater than 0');
    }
    if (errors.length > 0) {
      throw new BadRequestException(errors);
    }
    return {
      from: (input.from as string).toLowerCase(),
      to: (input.to as string).toLowerCase(),
      amount: input.amount as number,
    };
  }
}

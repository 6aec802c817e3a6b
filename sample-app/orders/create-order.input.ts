import { BadRequestException, Injectable, type PipeTransform } from '@nestjs/common';

/** The body of `POST /orders`, validated. */
export interface CreateOrderInput {
  sku: string;
  quantity: number;
  /** The payment provider's test card token; `tok_declined` declines. */
  card: string;
}

/** Most items one order may take. */
const MAX_QUANTITY = 1000;
const TOKEN = /^[A-Za-z0-9_-]{1,64}$/;

/** Validates the body of `POST /orders`; anything else is a 400 listing what is wrong. */
@Injectable()
export class ParseCreateOrderPipe implements PipeTransform<unknown, CreateOrderInput> {
  transform(body: unknown): CreateOrderInput {
    const input = (typeof body === 'object' && body !== null ? body : {}) as Record<
      string,
      unknown
    >;
    const errors: string[] = [];
    if (typeof input.sku !== 'string' || !TOKEN.test(input.sku)) {
      errors.push('sku must be 1 to 64 letters, digits, _ or -');
    }
    const quantity = input.quantity;
    if (!Number.isSafeInteger(quantity) || (quantity as number) < 1) {
      errors.push('quantity must be an integer greater than 0');
    } else if ((quantity as number) > MAX_QUANTITY) {
      errors.push(`quantity must be at most ${MAX_QUANTITY}`);
    }
    const card = input.card ?? 'tok_visa';
    if (typeof card !== 'string' || !TOKEN.test(card)) {
      errors.push('card must be a token of 1 to 64 letters, digits, _ or -');
    }
    if (errors.length > 0) {
      throw new BadRequestException(errors);
    }
    return { sku: input.sku as string, quantity: quantity as number, card: card as string };
  }
}

import { BadRequestException, Injectable, type PipeTransform } from '@nestjs/common';

/**
 * How the next charges with one card behave: counters that each charge with the card uses up.
 * Test hooks, kept in memory: a provider that restarts has forgotten them, as after a crash.
 */
export interface CardBehaviour {
  /** The next this many charges answer 503 without charging. */
  failNext: number;
  /** The next this many charges wait `delayMs` before charging. */
  slowNext: number;
  /** How long a slow charge waits, in milliseconds. */
  delayMs: number;
  /** The next this many charges commit, then kill the provider (SIGKILL) before it answers. */
  crashNext: number;
}

const FIELDS = ['failNext', 'slowNext', 'delayMs', 'crashNext'] as const;

/** Validates the body of `PUT /control/cards/:card`; every field is optional, 0 by default. */
@Injectable()
export class ParseCardBehaviourPipe implements PipeTransform<unknown, CardBehaviour> {
  transform(body: unknown): CardBehaviour {
    const input = (typeof body === 'object' && body !== null ? body : {}) as Record<
      string,
      unknown
    >;
    const behaviour: CardBehaviour = { failNext: 0, slowNext: 0, delayMs: 0, crashNext: 0 };
    const errors: string[] = [];
    for (const field of FIELDS) {
      const value = input[field] ?? 0;
      if (!Number.isSafeInteger(value) || (value as number) < 0) {
        errors.push(`${field} must be a non-negative integer`);
      } else {
        behaviour[field] = value as number;
      }
    }
    if (errors.length > 0) {
      throw new BadRequestException(errors);
    }
    return behaviour;
  }
}

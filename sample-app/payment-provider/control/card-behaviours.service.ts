import { Injectable } from '@nestjs/common';
import type { CardBehaviour } from './card-behaviour';

/** What a charge does besides charging, as its card's behaviour tells it. */
export interface ChargePlan {
  fail: boolean;
  delayMs: number;
  crashAfterCharging: boolean;
}

const NORMAL: ChargePlan = { fail: false, delayMs: 0, crashAfterCharging: false };

/** The behaviour set for each card, and the plan each charge takes from it. */
@Injectable()
export class CardBehavioursService {
  private readonly byCard = new Map<string, CardBehaviour>();

  set(card: string, behaviour: CardBehaviour): void {
    this.byCard.set(card, { ...behaviour });
  }

  /**
   * Uses up what applies to the next charge with `card`: a failure first (a charge that fails
   * goes no further, and leaves the other counters for the next one), else a delay and a crash.
   */
  take(card: string): ChargePlan {
    const behaviour = this.byCard.get(card);
    if (behaviour === undefined) {
      return NORMAL;
    }
    if (behaviour.failNext > 0) {
      behaviour.failNext--;
      return { ...NORMAL, fail: true };
    }
    const plan: ChargePlan = {
      fail: false,
      delayMs: behaviour.slowNext > 0 ? behaviour.delayMs : 0,
      crashAfterCharging: behaviour.crashNext > 0,
    };
    behaviour.slowNext = Math.max(0, behaviour.slowNext - 1);
    behaviour.crashNext = Math.max(0, behaviour.crashNext - 1);
    return plan;
  }
}

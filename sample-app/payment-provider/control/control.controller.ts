import { Body, Controller, Param, Put } from '@nestjs/common';
import { type CardBehaviour, ParseCardBehaviourPipe } from './card-behaviour';
import { CardBehavioursService } from './card-behaviours.service';

/**
 * Test hooks: `PUT /control/cards/:card` tells the provider how the next charges with that card
 * behave (fail, be slow, crash after charging). One card per test keeps parallel tests apart.
 */
@Controller('control/cards')
export class ControlController {
  constructor(private readonly behaviours: CardBehavioursService) {}

  @Put(':card')
  set(
    @Param('card') card: string,
    @Body(ParseCardBehaviourPipe) behaviour: CardBehaviour,
  ): CardBehaviour & { card: string } {
    this.behaviours.set(card, behaviour);
    return { card, ...behaviour };
  }
}

import type { JsMsg } from '@nats-io/jetstream';
import type { MsgHdrs } from '@nats-io/transport-node';
import { BaseRpcContext } from '@nestjs/microservices';
import type { IdempotentMessageContext } from '../messages/message-delivery';

/** How a JetStream message was settled. */
export type JetStreamSettlement = 'ack' | 'retry' | 'deadLetter';

/**
 * The RPC context of a message a {@link JetStreamServer} delivers (`@Ctx()` in a handler). It is
 * an `IdempotentMessageContext`: `@Idempotent()` reads the key from the `Nats-Msg-Id` header and
 * settles the message once its outcome is recorded. A message is settled once: later calls are
 * ignored, and the server settles a message nobody settled by the handler's outcome.
 */
export class JetStreamContext
  extends BaseRpcContext<[JsMsg, string]>
  implements IdempotentMessageContext
{
  private settlement: JetStreamSettlement | undefined;

  /** @param settle - carries out a settlement on the message (the server's). */
  constructor(
    message: JsMsg,
    pattern: string,
    private readonly settle: (message: JsMsg, how: JetStreamSettlement) => void,
  ) {
    super([message, pattern]);
  }

  /** The JetStream message: its data, headers and `info` (stream sequence, delivery count). */
  getMessage(): JsMsg {
    return this.args[0];
  }

  /** The handler's pattern: the consumer's filter subject. */
  getPattern(): string {
    return this.args[1];
  }

  /** The subject the message was published to. */
  getSubject(): string {
    return this.args[0].subject;
  }

  /** The message's headers, if it has any. */
  getHeaders(): MsgHdrs | undefined {
    return this.args[0].headers;
  }

  /** How the message was settled so far; undefined while it is not. */
  get settled(): JetStreamSettlement | undefined {
    return this.settlement;
  }

  /** The `Nats-Msg-Id` header, the message's idempotency key; undefined when it has none. */
  idempotencyKey(): string | undefined {
    return this.args[0].headers?.get('Nats-Msg-Id') || undefined;
  }

  /** Acknowledges the message: JetStream forgets it. */
  ack(): void {
    this.settleAs('ack');
  }

  /**
   * Negative acknowledgement: JetStream delivers the message again after the server's
   * `nakDelayMs`. On the consumer's last delivery (`max_deliver`) the message is dead-lettered
   * instead, as JetStream would drop it.
   */
  retry(): void {
    this.settleAs('retry');
  }

  /** Terminates the message (after copying it to `deadLetterSubject`, when set): never delivered again. */
  deadLetter(): void {
    this.settleAs('deadLetter');
  }

  private settleAs(how: JetStreamSettlement): void {
    if (this.settlement === undefined) {
      this.settlement = how;
      this.settle(this.args[0], how);
    }
  }
}

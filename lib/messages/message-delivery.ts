/**
 * What the module does with one delivered message once its outcome is known. A transport whose
 * context object has these methods (a custom transport's, say) gets them called by
 * `@Idempotent()`; Nest's RabbitMQ context is adapted to them. Exactly one of them is called per
 * delivery.
 */
export interface IdempotentMessageContext {
  /** The message's own id, the default idempotency key; undefined when it has none. */
  idempotencyKey(): string | undefined;
  /** Done: the outcome is recorded (or was already), the broker may forget the message. */
  ack(): void;
  /** Not done, nothing recorded: the broker should deliver it again later. */
  retry(): void;
  /** Never deliverable as it is: to the dead-letter path. */
  deadLetter(): void;
}

/** The parts of Nest's `RmqContext` (and the amqplib channel and message) the module uses. */
interface RmqContextLike {
  getChannelRef(): {
    ack(message: unknown): void;
    nack(message: unknown, allUpTo?: boolean, requeue?: boolean): void;
  };
  getMessage(): {
    properties?: { messageId?: unknown; headers?: Record<string, unknown> };
    fields?: { redelivered?: boolean };
  };
}

/** The longest a failed delivery is held before it is handed back for another attempt. */
const MAX_RETRY_DELAY_MS = 5_000;

function isRmqContext(context: unknown): context is RmqContextLike {
  return (
    typeof (context as RmqContextLike | null)?.getChannelRef === 'function' &&
    typeof (context as RmqContextLike | null)?.getMessage === 'function'
  );
}

function isIdempotentMessageContext(context: unknown): context is IdempotentMessageContext {
  const candidate = context as Partial<IdempotentMessageContext> | null;
  return (
    typeof candidate?.idempotencyKey === 'function' &&
    typeof candidate.ack === 'function' &&
    typeof candidate.retry === 'function' &&
    typeof candidate.deadLetter === 'function'
  );
}

/**
 * A RabbitMQ delivery (Nest's RMQ transport with `noAck: false`). An ack on a channel that has
 * closed since the delivery throws; the broker then delivers the message again by itself, and
 * the record answers that delivery, so the error is dropped.
 */
class RmqDelivery implements IdempotentMessageContext {
  constructor(private readonly context: RmqContextLike) {}

  idempotencyKey(): string | undefined {
    const id = this.context.getMessage().properties?.messageId;
    return typeof id === 'string' && id !== '' ? id : undefined;
  }

  ack(): void {
    this.settle((channel, message) => channel.ack(message));
  }

  /**
   * Hands the message back to the queue, after a pause that grows with its deliveries so far, so
   * that a failure lasting a while is not retried in a tight loop (nor, on a queue with a
   * delivery limit, dead-lettered within milliseconds). A quorum queue counts deliveries
   * (`x-delivery-count`); on a classic queue, a redelivered message waits the second step.
   */
  retry(): void {
    const message = this.context.getMessage();
    const counted = Number(message.properties?.headers?.['x-delivery-count']);
    const deliveries = Number.isFinite(counted) ? counted : message.fields?.redelivered ? 1 : 0;
    const delayMs = deliveries === 0 ? 0 : Math.min(100 * 2 ** deliveries, MAX_RETRY_DELAY_MS);
    const requeue = () => this.settle((channel, held) => channel.nack(held, false, true));
    if (delayMs === 0) {
      requeue();
    } else {
      setTimeout(requeue, delayMs).unref();
    }
  }

  deadLetter(): void {
    this.settle((channel, message) => channel.nack(message, false, false));
  }

  private settle(
    action: (channel: ReturnType<RmqContextLike['getChannelRef']>, message: unknown) => void,
  ): void {
    try {
      action(this.context.getChannelRef(), this.context.getMessage());
    } catch {
      // Channel closed: the broker redelivers (see the class comment).
    }
  }
}

/** A transport without acknowledgements (TCP, core NATS, ...): nothing to settle, no message id. */
const UNACKNOWLEDGED: IdempotentMessageContext = {
  idempotencyKey: () => undefined,
  ack: () => undefined,
  retry: () => undefined,
  deadLetter: () => undefined,
};

/** How the outcome of the message behind `context` (a handler's RPC context) is settled. */
export function deliveryOf(context: unknown): IdempotentMessageContext {
  if (isIdempotentMessageContext(context)) {
    return context;
  }
  return isRmqContext(context) ? new RmqDelivery(context) : UNACKNOWLEDGED;
}

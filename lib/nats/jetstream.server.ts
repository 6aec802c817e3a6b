import {
  type ConsumerMessages,
  type JetStreamClient,
  type JsMsg,
  jetstream,
  jetstreamManager,
} from '@nats-io/jetstream';
import { type NatsConnection, connect, headers } from '@nats-io/transport-node';
import { type CustomTransportStrategy, Server } from '@nestjs/microservices';
import { lastValueFrom } from 'rxjs';
import { JetStreamContext, type JetStreamSettlement } from './jetstream.context';
import {
  type JetStreamServerOptions,
  type ResolvedJetStreamServerOptions,
  durableName,
  resolveJetStreamServerOptions,
} from './jetstream-server.options';
import { ensureConsumer, ensureStream } from './jetstream-setup';

/** The transport id of {@link JetStreamServer}, as Nest's processing hooks see it. */
export const JETSTREAM_TRANSPORT = Symbol('nestjs-idempotency:jetstream');

/**
 * A Nest microservice transport that consumes NATS JetStream with at-least-once delivery: one
 * durable pull consumer per `@EventPattern()`/`@MessagePattern()` pattern (its filter subject),
 * each message's JSON data passed to the handler as its payload, with a {@link JetStreamContext}.
 *
 * The message is settled exactly once: by `@Idempotent()` once the outcome is recorded, or, for a
 * handler without it, by the server when the handler ends (ack on success, nak on error). Data
 * that is not JSON, or a subject without a handler, is terminated without running anything.
 * While a message is handled the server signals progress to JetStream every `ackWaitMs / 2`.
 * Request-reply is not supported: JetStream messages have no reply subject, and a
 * `@MessagePattern()` handler's value is dropped.
 *
 * @example
 * ```ts
 * const app = await NestFactory.createMicroservice(AppModule, {
 *   strategy: new JetStreamServer({ servers: 'nats://127.0.0.1:4222', stream: 'PAYMENTS' }),
 * });
 * await app.listen();
 * ```
 */
export class JetStreamServer extends Server implements CustomTransportStrategy {
  /** The id Nest passes to processing hooks for this transport: {@link JETSTREAM_TRANSPORT}. */
  override readonly transportId = JETSTREAM_TRANSPORT;
  private readonly options: ResolvedJetStreamServerOptions;
  private connection: NatsConnection | undefined;
  private client: JetStreamClient | undefined;
  private readonly consumers: ConsumerMessages[] = [];
  private readonly handling = new Set<Promise<void>>();
  /** Each pattern's consumer's delivery limit, as JetStream has it. */
  private readonly maxDeliver = new Map<string, number>();
  private closing = false;

  constructor(options: JetStreamServerOptions) {
    super();
    this.options = resolveJetStreamServerOptions(options);
  }

  /**
   * Connects, creates the stream and consumers when `ensure` is on, and starts consuming each
   * handler's pattern; called by Nest's `app.listen()`, which it answers through `callback`.
   */
  async listen(callback: (error?: unknown) => void): Promise<void> {
    try {
      for (const [pattern, handler] of this.getHandlers()) {
        if (!handler.isEventHandler) {
          // A JetStream message's reply subject is its ack subject: no caller would get the
          // reply, and a failure answered to nobody would be acked and lost.
          throw new Error(
            `JetStreamServer: ${pattern} is a @MessagePattern() handler; JetStream consumers take @EventPattern() handlers only.`,
          );
        }
      }
      // Reconnect for as long as it takes: once the client gives up, consuming would end silently.
      this.connection =
        this.options.connection ??
        (await connect({ servers: this.options.servers, maxReconnectAttempts: -1 }));
      this.client = jetstream(this.connection);
      const patterns = [...this.getHandlers().keys()];
      if (this.options.ensure) {
        const manager = await jetstreamManager(this.connection);
        await ensureStream(manager, this.options, patterns);
        for (const pattern of patterns) {
          await ensureConsumer(manager, this.options, this.durable(pattern), pattern);
        }
      }
      for (const pattern of patterns) {
        await this.consume(pattern);
      }
      callback();
    } catch (error) {
      await this.close().catch(() => undefined);
      callback(error);
    }
  }

  /** Stops pulling, lets the messages in hand finish and settle, then drains its own connection. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.consumers.splice(0).map((messages) => messages.close()));
    await Promise.allSettled([...this.handling]);
    if (this.connection && !this.options.connection && !this.connection.isClosed()) {
      await this.connection.drain();
    }
    this.connection = undefined;
  }

  /** The NATS connection. */
  unwrap<T>(): T {
    if (!this.connection) {
      throw new Error('JetStreamServer is not listening: it has no connection yet.');
    }
    return this.connection as T;
  }

  /** Not supported: the server emits no events. */
  on(): never {
    throw new Error('JetStreamServer emits no events.');
  }

  private durable(pattern: string): string {
    return durableName(this.options.durable, pattern);
  }

  private async consume(pattern: string): Promise<void> {
    const consumer = await this.client!.consumers.get(this.options.stream, this.durable(pattern));
    const maxDeliver = (await consumer.info(true)).config.max_deliver ?? -1;
    this.maxDeliver.set(pattern, maxDeliver > 0 ? maxDeliver : Infinity);
    const messages = await consumer.consume({ max_messages: this.options.maxMessages });
    this.consumers.push(messages);
    void (async () => {
      for await (const message of messages) {
        const handled = this.handle(pattern, message);
        this.handling.add(handled);
        void handled.finally(() => this.handling.delete(handled));
        while (this.handling.size >= this.options.maxMessages) {
          await Promise.race(this.handling);
        }
      }
      if (!this.closing) {
        // The client ends its iterator without an error when its connection closes for good.
        this.logger.error(`Consuming ${pattern} stopped: the NATS connection closed.`);
      }
    })().catch((error: unknown) =>
      this.logger.error(`Consuming ${pattern} stopped: ${String(error)}`),
    );
  }

  private async handle(pattern: string, message: JsMsg): Promise<void> {
    const context = new JetStreamContext(message, pattern, (msg, how) =>
      this.settle(msg, how === 'retry' && this.lastDelivery(pattern, msg) ? 'deadLetter' : how),
    );
    const handler = this.getHandlerByPattern(pattern);
    if (!handler) {
      this.logger.warn(
        `${message.subject} #${message.seq}: no handler for ${pattern}, terminated.`,
      );
      context.deadLetter();
      return;
    }
    let data: unknown;
    try {
      data = message.json();
    } catch {
      this.logger.warn(`${message.subject} #${message.seq}: its data is not JSON, terminated.`);
      context.deadLetter();
      return;
    }
    const progress = setInterval(
      () => context.settled === undefined && this.answer(message, () => message.working()),
      Math.max(1, Math.floor(this.options.ackWaitMs / 2)),
    );
    try {
      await lastValueFrom(this.transformToObservable(await handler(data, context)), {
        defaultValue: undefined,
      });
      context.ack();
    } catch {
      // Reported by Nest's RPC exception filter; a handler that settled already stays settled.
      context.retry();
    } finally {
      clearInterval(progress);
    }
  }

  /**
   * Whether JetStream will not deliver the message again: a retry of it would drop it silently
   * (a MAX_DELIVERIES advisory only), so it takes the dead-letter path instead.
   */
  private lastDelivery(pattern: string, message: JsMsg): boolean {
    return message.info.deliveryCount >= (this.maxDeliver.get(pattern) ?? Infinity);
  }

  private settle(message: JsMsg, how: JetStreamSettlement): void {
    if (how === 'ack') {
      this.answer(message, () => message.ack());
    } else if (how === 'retry') {
      this.answer(message, () => message.nak(this.nakDelayMs(message)));
    } else if (this.options.deadLetterSubject === undefined) {
      // Bare: servers before 2.11 ignore a `+TERM` that carries a reason.
      this.answer(message, () => message.term());
    } else {
      // Counted with the messages in hand, so that close() waits for the copy and its term.
      const copying = this.copyToDeadLetters(message, this.options.deadLetterSubject);
      this.handling.add(copying);
      void copying.finally(() => this.handling.delete(copying));
    }
  }

  /** The pause before a failed message's next delivery: doubling with each, up to the cap. */
  private nakDelayMs(message: JsMsg): number {
    const doublings = Math.min(Math.max(message.info.deliveryCount - 1, 0), 30);
    return Math.min(this.options.nakDelayMs * 2 ** doublings, this.options.maxNakDelayMs);
  }

  /**
   * Sends one of the message's answers to JetStream. On a closed connection that throws; the
   * answer is then lost, and JetStream delivers the message again after its ack wait, which the
   * record answers.
   */
  private answer(message: JsMsg, send: () => void): void {
    try {
      send();
    } catch (error) {
      this.logger.warn(`${message.subject} #${message.seq}: not answered: ${String(error)}`);
    }
  }

  /** Publishes the message's copy, then terminates it; when the copy fails, it is delivered again. */
  private async copyToDeadLetters(message: JsMsg, subject: string): Promise<void> {
    const copied = headers();
    for (const [name, values] of message.headers ?? []) {
      for (const value of values) {
        copied.append(name, value);
      }
    }
    copied.set('Nats-Dead-Letter-Stream', message.info.stream);
    copied.set('Nats-Dead-Letter-Subject', message.subject);
    copied.set('Nats-Dead-Letter-Sequence', String(message.seq));
    // The copy's own id is its place in the stream: two messages with one key are both kept
    // (the dead-letter stream would drop the second as a duplicate), one message copied twice once.
    const key = message.headers?.get('Nats-Msg-Id');
    if (key) {
      copied.set('Nats-Dead-Letter-Msg-Id', key);
    }
    copied.set('Nats-Msg-Id', `${message.info.stream}:${message.seq}`);
    try {
      await this.client!.publish(subject, message.data, { headers: copied });
    } catch (error) {
      this.logger.error(
        `${message.subject} #${message.seq}: not copied to ${subject}: ${String(error)}`,
      );
      this.answer(message, () => message.nak(this.nakDelayMs(message)));
      return;
    }
    this.answer(message, () => message.term());
  }
}

import {
  type BeforeApplicationShutdown,
  type CallHandler,
  type ExecutionContext,
  Injectable,
  Logger,
  type NestInterceptor,
} from '@nestjs/common';
import { RmqContext } from '@nestjs/microservices';
import { type Observable, finalize } from 'rxjs';

/** How long a shutdown waits for the deliveries being handled (the module's `waitTimeoutMs`). */
const DRAIN_TIMEOUT_MS = 10_000;

/** The consumer's channel and tag, as a delivery tells them. */
interface Consumption {
  channel: { cancel(consumerTag: string): Promise<unknown> };
  consumerTag: string;
}

/**
 * Lets a graceful shutdown finish the deliveries being handled: it stops taking new ones, waits
 * until those in hand are settled (acked, retried or dead-lettered), then lets Nest close the
 * channel. Without it, every delivery in hand would come back to the queue at each deploy, and
 * its duplicates' waits would start over on another consumer.
 *
 * An interceptor outside `@Idempotent()`'s, which settles each delivery before it completes.
 */
@Injectable()
export class InFlightDeliveries implements NestInterceptor, BeforeApplicationShutdown {
  private readonly logger = new Logger(InFlightDeliveries.name);
  private inFlight = 0;
  private consumption: Consumption | undefined;
  private drained: (() => void) | undefined;

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const delivery = context.switchToRpc().getContext<unknown>();
    if (!(delivery instanceof RmqContext)) {
      // JetStreamServer's close() stops pulling and lets the messages in hand settle itself.
      return next.handle();
    }
    this.consumption ??= {
      channel: delivery.getChannelRef() as Consumption['channel'],
      consumerTag: (delivery.getMessage() as { fields: { consumerTag: string } }).fields
        .consumerTag,
    };
    this.inFlight++;
    return next.handle().pipe(
      finalize(() => {
        this.inFlight--;
        if (this.inFlight === 0) {
          this.drained?.();
        }
      }),
    );
  }

  async beforeApplicationShutdown(): Promise<void> {
    if (this.consumption === undefined) {
      return;
    }
    // The broker sends every delivery before its cancel-ok, and a delivery reaches this
    // interceptor without I/O: once the macrotask after the cancel runs, all are counted.
    await this.consumption.channel.cancel(this.consumption.consumerTag).catch(() => undefined);
    await new Promise((settle) => setImmediate(settle));
    if (this.inFlight === 0) {
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const done = await Promise.race([
      new Promise<true>((settle) => (this.drained = () => settle(true))),
      new Promise<false>((settle) => (timer = setTimeout(() => settle(false), DRAIN_TIMEOUT_MS))),
    ]);
    clearTimeout(timer);
    if (!done) {
      this.logger.warn(
        `${this.inFlight} deliveries still in hand after ${DRAIN_TIMEOUT_MS} ms: the broker delivers them again.`,
      );
    }
  }
}

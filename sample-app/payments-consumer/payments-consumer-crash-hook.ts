import { Inject, Injectable } from '@nestjs/common';
import type { RmqContext } from '@nestjs/microservices';
import { JetStreamContext } from '../../lib/nats';
import type { PaymentsConsumerCrashPoint, SampleAppConfig } from '../config';
import { SAMPLE_APP_CONFIG } from '../sample-app.constants';

/**
 * Test hook (`PAYMENTS_CONSUMER_CRASH_AT`): kills this process with SIGKILL at one point of a
 * `payments.requested` delivery, so that tests can crash a real consumer between its write, its
 * commit and its ack. Unset, it does nothing.
 */
@Injectable()
export class PaymentsConsumerCrashHook {
  constructor(@Inject(SAMPLE_APP_CONFIG) private readonly config: SampleAppConfig) {}

  /** Dies here if set to die at `point`: no rollback, no ack, as in a power cut. */
  at(point: PaymentsConsumerCrashPoint): void {
    if (this.config.paymentsConsumer?.crashAt === point) {
      die();
    }
  }

  /**
   * Set to die `after-commit`: makes the delivery's first ack kill the process instead. The module
   * acks right after its commit, so nothing runs in between where the hook could stand.
   */
  beforeAck(context: unknown): void {
    if (this.config.paymentsConsumer?.crashAt !== 'after-commit') {
      return;
    }
    if (context instanceof JetStreamContext) {
      // The module settles a JetStream message through its context.
      context.ack = die;
    } else {
      const channel = (context as RmqContext).getChannelRef() as { ack(...args: unknown[]): void };
      channel.ack = die;
    }
  }
}

function die(): void {
  process.kill(process.pid, 'SIGKILL');
}

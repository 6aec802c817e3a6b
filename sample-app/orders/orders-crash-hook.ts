import { Inject, Injectable } from '@nestjs/common';
import type { OrdersCrashPoint, SampleAppConfig } from '../config';
import { SAMPLE_APP_CONFIG } from '../sample-app.constants';

/**
 * Test hook (`ORDERS_CRASH_AT`): kills this process with SIGKILL at one point of `POST /orders`,
 * so that tests can crash a real process at each boundary of the flow. Unset, it does nothing.
 */
@Injectable()
export class OrdersCrashHook {
  constructor(@Inject(SAMPLE_APP_CONFIG) private readonly config: SampleAppConfig) {}

  /** Whether the process is set to die at `point`. */
  armed(point: OrdersCrashPoint): boolean {
    return this.config.ordersCrashAt === point;
  }

  /** Dies here if set to die at `point`: no cleanup, no answer, as in a power cut. */
  at(point: OrdersCrashPoint): void {
    if (this.armed(point)) {
      process.kill(process.pid, 'SIGKILL');
    }
  }
}

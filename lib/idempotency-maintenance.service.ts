import {
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { IdempotencyStore } from './store/idempotency-store';

/**
 * Lets the store prepare its storage as the application starts (a failure stops the start), then
 * runs the store's upkeep every `maintenanceIntervalMs()` it declares (see
 * `IdempotencyStore.maintain`). Purging is the purger's, on its own interval.
 */
@Injectable()
export class IdempotencyMaintenance implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('IdempotencyMaintenance');
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly store: IdempotencyStore) {}

  async onApplicationBootstrap(): Promise<void> {
    // Optional for stores written against the port without extending the class.
    const store = this.store as Partial<IdempotencyStore>;
    await store.prepare?.();
    const interval = store.maintenanceIntervalMs?.() ?? 0;
    if (interval > 0 && store.maintain) {
      this.timer = setInterval(() => void this.maintainNow(), interval).unref();
    }
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** Runs the store's upkeep now, unless a run is under way; failures are logged. */
  maintainNow(): Promise<void> {
    this.running ??= (this.store as Partial<IdempotencyStore>)
      .maintain?.()
      .catch((error: unknown) => {
        this.logger.warn(`Maintenance of the idempotency store failed: ${String(error)}`);
      })
      .finally(() => (this.running = undefined));
    return this.running ?? Promise.resolve();
  }
}

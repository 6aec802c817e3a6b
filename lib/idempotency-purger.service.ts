import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import type { ResolvedModuleSettings } from './idempotency-options.defaults';
import { IDEMPOTENCY_SETTINGS } from './idempotency.module-definition';
import { IdempotencyStore } from './storage/idempotency-store';

/** Most batches one tick deletes, so a backlog is worked off over ticks instead of in one burst. */
const MAX_BATCHES_PER_TICK = 100;

/**
 * Deletes expired keys on an interval. Lookups ignore expired keys anyway; this only keeps the
 * table small. The store makes sure one instance purges at a time.
 */
@Injectable()
export class IdempotencyPurger implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('IdempotencyPurger');
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;

  constructor(
    @Inject(IDEMPOTENCY_SETTINGS) private readonly settings: ResolvedModuleSettings,
    private readonly store: IdempotencyStore,
  ) {}

  onApplicationBootstrap(): void {
    const interval = this.settings.purgeIntervalMs;
    if (interval <= 0) {
      return;
    }
    // Instances started together would otherwise all wake at once.
    const firstDelay = interval / 2 + Math.random() * interval;
    this.timer = setTimeout(() => {
      this.timer = setInterval(() => void this.purgeNow(), interval).unref();
      void this.purgeNow();
    }, firstDelay).unref();
  }

  async onApplicationShutdown(): Promise<void> {
    clearTimeout(this.timer);
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** Runs one purge pass now (unless one is running) and returns how many keys it deleted. */
  purgeNow(): Promise<number> {
    this.running ??= this.purgeBatches().finally(() => (this.running = undefined));
    return this.running;
  }

  private async purgeBatches(): Promise<number> {
    const batchSize = this.settings.purgeBatchSize;
    let total = 0;
    try {
      for (let batch = 0; batch < MAX_BATCHES_PER_TICK; batch++) {
        const deleted = await this.store.purgeExpired(batchSize);
        total += deleted;
        if (deleted < batchSize) {
          break;
        }
      }
    } catch (error) {
      this.logger.warn(`Purge of expired idempotency keys failed: ${String(error)}`);
    }
    return total;
  }
}

import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { IDEMPOTENCY_TRANSACTIONAL_STORE } from './idempotency.module-definition';
import { moduleStores } from './module-stores';
import { IdempotencyStore } from './store/idempotency-store';

/**
 * Lets each of the module's stores prepare its storage as the application starts (a failure
 * stops the start), then runs each store's upkeep every `maintenanceIntervalMs()` it declares
 * (see `IdempotencyStore.maintain`). Purging is the purger's, on its own interval.
 */
@Injectable()
export class IdempotencyMaintenance implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('IdempotencyMaintenance');
  private readonly stores: Partial<IdempotencyStore>[];
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly running = new Map<Partial<IdempotencyStore>, Promise<void>>();

  constructor(
    store: IdempotencyStore,
    @Inject(IDEMPOTENCY_TRANSACTIONAL_STORE) transactionalStore: IdempotencyStore | null,
  ) {
    // Partial: stores written against the port without extending the class may lack these.
    this.stores = moduleStores(store, transactionalStore);
  }

  async onApplicationBootstrap(): Promise<void> {
    for (const store of this.stores) {
      await store.prepare?.();
    }
    for (const store of this.stores) {
      const interval = store.maintenanceIntervalMs?.() ?? 0;
      if (interval > 0 && store.maintain) {
        this.timers.push(setInterval(() => void this.maintain(store), interval).unref());
      }
    }
  }

  async onApplicationShutdown(): Promise<void> {
    this.timers.forEach(clearInterval);
    this.timers.length = 0;
    await Promise.all(this.running.values());
  }

  /** Runs `store`'s upkeep, unless a run of it is under way; failures are logged. */
  private maintain(store: Partial<IdempotencyStore>): Promise<void> {
    let run = this.running.get(store);
    if (!run) {
      run = Promise.resolve(store.maintain?.())
        .catch((error: unknown) => {
          this.logger.warn(`Maintenance of the idempotency store failed: ${String(error)}`);
        })
        .finally(() => this.running.delete(store));
      this.running.set(store, run);
    }
    return run;
  }
}

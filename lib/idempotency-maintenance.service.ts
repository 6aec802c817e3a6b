import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
  Optional,
} from '@nestjs/common';
import { performance } from 'node:perf_hooks';
import {
  IDEMPOTENCY_TELEMETRY,
  IDEMPOTENCY_TRANSACTIONAL_STORE,
} from './idempotency.module-definition';
import { moduleStores } from './module-stores';
import { IdempotencyStore } from './store/idempotency-store';
import type { IdempotencyTelemetry } from './telemetry/idempotency-telemetry';

/**
 * Lets each of the module's stores prepare its storage as the application starts (a failure
 * stops the start), then runs each store's upkeep every `maintenanceIntervalMs()` it declares
 * (see `IdempotencyStore.maintain`). Purging is the purger's, which starts after this.
 */
@Injectable()
export class IdempotencyMaintenance implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('IdempotencyMaintenance');
  /** Partial: stores written against the port without extending the class may lack these. */
  private readonly stores: Partial<IdempotencyStore>[];
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly running = new Map<Partial<IdempotencyStore>, Promise<void>>();

  /**
   * Metrics of the runs; null when off or not installed. Injected as a property: the constructor is
   * public API, and this type is not.
   */
  @Optional()
  @Inject(IDEMPOTENCY_TELEMETRY)
  private readonly telemetry?: IdempotencyTelemetry | null;

  constructor(
    store: IdempotencyStore,
    @Inject(IDEMPOTENCY_TRANSACTIONAL_STORE) transactionalStore: IdempotencyStore | null,
  ) {
    this.stores = moduleStores(store, transactionalStore);
  }

  async onApplicationBootstrap(): Promise<void> {
    for (const store of this.stores) {
      await store.prepare?.();
    }
    for (const store of this.stores) {
      const interval = store.maintenanceIntervalMs?.() ?? 0;
      if (interval > 0 && store.maintain) {
        const tick = () =>
          this.maintain(store).catch((error: unknown) => {
            // On a partitioned table, missing partitions are what the next claims fail on.
            this.logger.error(`Maintenance of the idempotency store failed: ${String(error)}`);
          });
        this.timers.push(setInterval(tick, interval).unref());
      }
    }
  }

  async onApplicationShutdown(): Promise<void> {
    this.timers.forEach(clearInterval);
    this.timers.length = 0;
    await Promise.allSettled(this.running.values());
  }

  /**
   * Runs the upkeep of each of the module's stores now (joining a run under way), for an
   * application that runs it from a job of its own (a store's interval set to 0). Rejects with
   * the first failure.
   */
  async maintainNow(): Promise<void> {
    const runs = await Promise.allSettled(this.stores.map((store) => this.maintain(store)));
    const failed = runs.find((run) => run.status === 'rejected');
    if (failed) {
      throw failed.reason;
    }
  }

  /** Runs `store`'s upkeep, unless a run of it is under way. */
  private maintain(store: Partial<IdempotencyStore>): Promise<void> {
    let run = this.running.get(store);
    if (!run) {
      const startedAt = performance.now();
      const measured = (error?: unknown) => {
        if (store.maintain) {
          this.telemetry?.maintenanceRun(store, performance.now() - startedAt, error);
        }
      };
      // A synchronous throw, or a value that is not a promise, becomes this promise's outcome.
      run = Promise.resolve()
        .then(() => store.maintain?.())
        .then(
          () => measured(),
          (error: unknown) => {
            measured(error);
            throw error;
          },
        )
        .finally(() => this.running.delete(store));
      this.running.set(store, run);
    }
    return run;
  }
}

import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
  Optional,
} from '@nestjs/common';
import { IDEMPOTENCY_DEFAULTS, type ResolvedModuleSettings } from './idempotency-options.defaults';
import {
  IDEMPOTENCY_SETTINGS,
  IDEMPOTENCY_TELEMETRY,
  IDEMPOTENCY_TRANSACTIONAL_STORE,
} from './idempotency.module-definition';
import { IdempotencyMaintenance } from './idempotency-maintenance.service';
import { moduleStores } from './module-stores';
import { IdempotencyStore } from './store/idempotency-store';
import type { IdempotencyTelemetry } from './telemetry/idempotency-telemetry';

/**
 * Share of the interval one tick may spend deleting while batches come back full. A fixed number
 * of batches per tick capped the purge at 1 667 rows/s with the defaults, about twice what one
 * instance writes at full speed (bench/purge); time-boxed, it keeps deleting at the database's
 * pace (44 000 rows/s in batches of 1 000 there) for half of every interval, and a backlog never
 * grows into a burst that outlasts its tick.
 */
export const TICK_BUDGET_SHARE = 0.5;

/**
 * Deletes expired keys every `purgeIntervalMs` (on a partitioned table: drops the expired
 * partitions), from each of the module's stores. Lookups ignore expired keys anyway; this only
 * keeps the storage small. A store makes sure one instance purges it at a time.
 */
@Injectable()
export class IdempotencyPurger implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('IdempotencyPurger');
  private timer: NodeJS.Timeout | undefined;
  /** The pass under way, per store: each store is purged on its own, so one that hangs stops only its own. */
  private readonly running = new Map<IdempotencyStore, Promise<number>>();
  private stopping = false;
  private readonly stores: IdempotencyStore[];

  /**
   * Metrics of the passes; null when off or not installed. Injected as a property: the constructor
   * is public API, and this type is not.
   */
  @Optional()
  @Inject(IDEMPOTENCY_TELEMETRY)
  private readonly telemetry?: IdempotencyTelemetry | null;

  constructor(
    @Inject(IDEMPOTENCY_SETTINGS) private readonly settings: ResolvedModuleSettings,
    store: IdempotencyStore,
    @Optional()
    @Inject(IDEMPOTENCY_TRANSACTIONAL_STORE)
    transactionalStore?: IdempotencyStore | null,
    // Depending on it puts this purger's start after the stores are prepared, and none after a
    // failed preparation (Nest starts providers after those they depend on).
    @Optional() _maintenance?: IdempotencyMaintenance,
  ) {
    this.stores = moduleStores(store, transactionalStore);
  }

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
    // A pass working off a backlog stops after its current batch rather than at its deadline.
    this.stopping = true;
    clearTimeout(this.timer);
    clearInterval(this.timer);
    this.timer = undefined;
    await Promise.all(this.running.values());
  }

  /**
   * Runs one purge pass of each of the module's stores now (joining a pass of a store under way)
   * and returns how many keys they deleted.
   */
  async purgeNow(): Promise<number> {
    const deleted = await Promise.all(this.stores.map((store) => this.purge(store)));
    return deleted.reduce((sum, count) => sum + count, 0);
  }

  private purge(store: IdempotencyStore): Promise<number> {
    let pass = this.running.get(store);
    if (!pass) {
      pass = this.purgeBatches(store).finally(() => this.running.delete(store));
      this.running.set(store, pass);
    }
    return pass;
  }

  private async purgeBatches(store: IdempotencyStore): Promise<number> {
    const batchSize = this.settings.purgeBatchSize;
    // purgeNow() also runs with the interval turned off (0): one budget of the default interval.
    const interval = this.settings.purgeIntervalMs || IDEMPOTENCY_DEFAULTS.purgeIntervalMs;
    const startedAt = performance.now();
    const deadline = startedAt + interval * TICK_BUDGET_SHARE;
    let total = 0;
    let failure: unknown = undefined;
    try {
      do {
        const deleted = await store.purgeExpired(batchSize);
        total += deleted;
        if (deleted < batchSize) {
          break;
        }
      } while (performance.now() < deadline && !this.stopping);
    } catch (error) {
      failure = error;
      this.logger.warn(`Purge of expired idempotency keys failed: ${String(error)}`);
    }
    this.telemetry?.purgePass(store, performance.now() - startedAt, total, failure);
    return total;
  }
}

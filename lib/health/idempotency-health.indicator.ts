import { Inject, Injectable, Logger } from '@nestjs/common';
import { type HealthIndicatorResult, HealthIndicatorService } from '@nestjs/terminus';
import { errorClassName } from '../error-class-name';
import { StoreTimeoutError, withTimeout } from '../execution/with-timeout';
import { IDEMPOTENCY_TRANSACTIONAL_STORE } from '../idempotency.module-definition';
import { moduleStores } from '../module-stores';
import { IdempotencyStore } from '../store/idempotency-store';
import type { IdempotencyStoreHealth } from '../store/idempotency-store-health.interface';
import { exceededThresholds } from './exceeded-thresholds';
import {
  type IdempotencyHealthOptions,
  type ResolvedHealthOptions,
  resolveHealthOptions,
} from './idempotency-health.options';

/** How one store fared in a check. */
export type IdempotencyStoreHealthReport = Partial<IdempotencyStoreHealth> & {
  /** `down` when the store did not answer in time, failed, or reported a problem. */
  status: 'up' | 'degraded' | 'down';
  /** How long the store took to answer, in milliseconds (absent when it did not). */
  responseMs?: number;
  /** The thresholds exceeded (see `IdempotencyHealthOptions`). */
  exceeded?: string[];
  /** Why the store is down, when it did not answer. */
  error?: string;
};

/** What `isHealthy` reports under its key, besides `status`: one report per store of the module. */
export interface IdempotencyHealthDetails {
  [role: string]: IdempotencyStoreHealthReport;
  /** The module's `store`. */
  store: IdempotencyStoreHealthReport;
}

/** Stores written against the port without extending the class may lack `health`. */
type AnyStore = Partial<IdempotencyStore>;

/** A store's check under way, joined by the polls that come while it runs. */
interface RunningCheck {
  health: Promise<IdempotencyStoreHealth>;
  startedAt: number;
}

/**
 * How many timeouts long a check is joined. One that never ends (a connection whose peer vanished
 * without a word) would otherwise keep the store down after it recovers: past this, the next poll
 * starts a check of its own.
 */
const JOINED_FOR_TIMEOUTS = 10;

/**
 * A `@nestjs/terminus` health indicator of the idempotency module's stores: `store`, and
 * `transactionalStore` when it is another one. Each must answer within `timeoutMs`; each reports
 * what it measures cheaply (see `IdempotencyStoreHealth`). Provide it next to `TerminusModule`;
 * the stores come from the (global) `IdempotencyModule`.
 *
 * A check still running when the next poll comes (a frozen database, say) is joined, not
 * repeated, so a store that hangs holds one connection for health checks, not one per poll; after
 * ten timeouts a new check starts, in case the old one never ends.
 *
 * @example
 * ```ts
 * @Controller('health')
 * export class HealthController {
 *   constructor(
 *     private readonly health: HealthCheckService,
 *     private readonly idempotency: IdempotencyHealthIndicator,
 *   ) {}
 *
 *   @Get()
 *   @HealthCheck()
 *   check() {
 *     return this.health.check([() => this.idempotency.isHealthy('idempotency')]);
 *   }
 * }
 * ```
 */
@Injectable()
export class IdempotencyHealthIndicator {
  private readonly logger = new Logger('IdempotencyHealthIndicator');
  private readonly stores: { role: string; store: AnyStore }[];
  private readonly running = new Map<AnyStore, Map<string, RunningCheck>>();

  constructor(
    private readonly indicators: HealthIndicatorService,
    store: IdempotencyStore,
    @Inject(IDEMPOTENCY_TRANSACTIONAL_STORE) transactionalStore: IdempotencyStore | null,
  ) {
    this.stores = moduleStores(store, transactionalStore).map((each, index) => ({
      role: index === 0 ? 'store' : 'transactionalStore',
      store: each,
    }));
  }

  /**
   * Checks every store of the module, in parallel. `down` when any store is down, `degraded`
   * when any exceeds a threshold (with `whenExceeded: 'degraded'`), else `up`; the details hold
   * one report per store, under `store` and `transactionalStore`.
   *
   * @param key - the key of the result in the health check's output.
   * @param options - timeouts, what to measure and thresholds; see `IdempotencyHealthOptions`.
   * @throws Error when `options` are invalid.
   */
  async isHealthy<const Key extends string>(
    key: Key,
    options: IdempotencyHealthOptions = {},
  ): Promise<HealthIndicatorResult<Key>> {
    const settings = resolveHealthOptions(options);
    const reports = await Promise.all(
      this.stores.map(
        async ({ role, store }) => [role, await this.checkStore(store, settings)] as const,
      ),
    );
    const details = Object.fromEntries(reports) as IdempotencyHealthDetails;
    const statuses = reports.map(([, report]) => report.status);
    const session = this.indicators.check(key);
    if (statuses.includes('down')) {
      return session.down(details);
    }
    return statuses.includes('degraded') ? session.degraded(details) : session.up(details);
  }

  private async checkStore(
    store: AnyStore,
    settings: ResolvedHealthOptions,
  ): Promise<IdempotencyStoreHealthReport> {
    const started = performance.now();
    let health: IdempotencyStoreHealth;
    try {
      health = await withTimeout(this.storeHealth(store, settings), settings.timeoutMs);
    } catch (error) {
      return { status: 'down', error: this.publicError(store, error) };
    }
    const responseMs = Math.round(performance.now() - started);
    const exceeded = exceededThresholds(health, settings.thresholds);
    const status = health.problems?.length
      ? 'down'
      : exceeded.length > 0
        ? settings.whenExceeded
        : 'up';
    // The indicator's fields last: a store's own cannot override them.
    return { ...health, status, responseMs, ...(exceeded.length > 0 ? { exceeded } : {}) };
  }

  /**
   * What a failed check says on the endpoint, which is often public: a timeout as such, any other
   * error by its class only (a driver's message names hosts, ports and users). The message is
   * logged.
   */
  private publicError(store: AnyStore, error: unknown): string {
    if (error instanceof StoreTimeoutError) {
      return error.message;
    }
    this.logger.warn(`${store.constructor.name} health check failed: ${String(error)}`);
    const type = errorClassName(error) ?? typeof error;
    return `The idempotency store failed (${type}); the error is in the application's log.`;
  }

  /** `store`'s health, joining a recent check of it with the same query that is still running. */
  private storeHealth(
    store: AnyStore,
    { query, timeoutMs }: ResolvedHealthOptions,
  ): Promise<IdempotencyStoreHealth> {
    const asked = JSON.stringify(query);
    let checks = this.running.get(store);
    if (!checks) {
      checks = new Map();
      this.running.set(store, checks);
    }
    const now = performance.now();
    const joined = checks.get(asked);
    if (joined && now - joined.startedAt < JOINED_FOR_TIMEOUTS * timeoutMs) {
      return joined.health;
    }
    const health = store.health ?? IdempotencyStore.prototype.health;
    const check: RunningCheck = {
      startedAt: now,
      // A synchronous throw becomes this promise's rejection.
      health: Promise.resolve()
        .then(() => health.call(store, { ...query, timeoutMs }))
        .finally(() => {
          if (checks.get(asked) === check) {
            checks.delete(asked);
          }
        }),
    };
    checks.set(asked, check);
    return check.health;
  }
}

import {
  IDEMPOTENCY_DEFAULTS,
  positiveOption,
  timerDelay,
  wholeNumber,
} from '../idempotency-options.defaults';
import type { IdempotencyModuleOptions } from '../interfaces/idempotency-options.interface';
import type { IdempotencyPartitioning } from './layout/idempotency-partitions';

/** Options of `postgresStore()`. */
export interface PostgresStoreOptions {
  /** Name of the TypeORM DataSource whose pool the store uses. Default: the default DataSource. */
  dataSourceName?: string;
  /**
   * The table, optionally schema-qualified. Validated as an identifier, since it is part of the
   * SQL. Create it with `createIdempotencyTableSql(tableName)`. Default: `'idempotency_records'`.
   */
  tableName?: string;
  /**
   * Set when the table is partitioned by expiry (created with
   * `createPartitionedIdempotencyTableSql(tableName)`), for tables too large to purge row by row.
   * The store then keeps one live row per key with a per-key lock instead of the unique index,
   * creates partitions ahead of time at start-up and every `partitioning.maintenanceIntervalMs`,
   * and purges by dropping partitions whose keys have all expired, every `purgeIntervalMs` (0
   * leaves them to you). Needs PostgreSQL 14 or later, and READ COMMITTED transactions for
   * transactional routes.
   * Default: unset (an ordinary table).
   */
  partitioning?: IdempotencyPartitioningOptions;
  /**
   * Log a warning when a transactional request's handler queries the database outside its
   * transaction (for example through an injected repository), once per route.
   * Default: `true` unless `NODE_ENV` is `'production'`.
   */
  warnOnQueriesOutsideTransaction?: boolean;
}

/** How the store keeps a table partitioned by expiry (see `PostgresStoreOptions.partitioning`). */
export interface IdempotencyPartitioningOptions {
  /**
   * Width of one partition, in milliseconds of `expires_at`. Keep partitions few: a lookup by key
   * probes every partition that holds unexpired rows. Default: one day.
   */
  partitionMs?: number;
  /**
   * How far past now partitions are kept created, in milliseconds. It must exceed the largest
   * `ttlMs` + `lockTimeoutMs` of any route plus `maintenanceIntervalMs`, or claims of those routes
   * fail with 503 (checked against the module-wide TTL and lease at start-up). Default: three days.
   */
  aheadMs?: number;
  /**
   * How often the partitions ahead are created while the application runs, in milliseconds: a
   * whole number, at most half of the margin `aheadMs` - `ttlMs` - `lockTimeoutMs`. 0 creates
   * them at start-up only: run `IdempotencyMaintenance.maintainNow()` yourself (from a scheduled
   * job, say) at least that often. Default: a quarter of the margin, at least one second (so the
   * margin must be two seconds or more) and at most one minute.
   */
  maintenanceIntervalMs?: number;
}

/**
 * Longest default interval between two creations of partitions ahead: the check finds nothing to
 * do nearly always, and takes no lock then.
 */
const MAX_MAINTENANCE_INTERVAL_MS = 60_000;

/** Defaults of the partitioning options. */
export const PARTITIONING_DEFAULTS = {
  partitionMs: 86_400_000,
  aheadMs: 3 * 86_400_000,
} as const;

/**
 * The partitioning of the store's table with defaults applied, or `undefined` for an ordinary
 * table. Partitions must reach past the expiry of any claim written now, checked against the
 * module's TTL and lease.
 */
export function resolvePartitioning(
  partitioning: IdempotencyPartitioningOptions | undefined,
  module: IdempotencyModuleOptions,
): IdempotencyPartitioning | undefined {
  if (partitioning === undefined) {
    return undefined;
  }
  const partitionMs = positiveOption(
    partitioning.partitionMs,
    PARTITIONING_DEFAULTS.partitionMs,
    'partitioning.partitionMs',
  );
  const aheadMs = positiveOption(
    partitioning.aheadMs,
    PARTITIONING_DEFAULTS.aheadMs,
    'partitioning.aheadMs',
  );
  const reach =
    positiveOption(module.ttlMs, IDEMPOTENCY_DEFAULTS.ttlMs, 'ttlMs') +
    positiveOption(module.lockTimeoutMs, IDEMPOTENCY_DEFAULTS.lockTimeoutMs, 'lockTimeoutMs');
  if (aheadMs <= reach) {
    throw new Error(
      `nestjs-idempotency: partitioning.aheadMs (${aheadMs}) must exceed ttlMs + lockTimeoutMs (${reach}), or new keys would find no partition.`,
    );
  }
  // A pass creates partitions up to aheadMs past its own time: the next must come before the
  // margin past the longest claim runs out, with as much again to spare for a late or slow pass.
  const margin = aheadMs - reach;
  const maintenanceIntervalMs =
    partitioning.maintenanceIntervalMs === 0
      ? 0
      : wholeNumber(
          timerDelay(
            partitioning.maintenanceIntervalMs,
            Math.round(Math.min(MAX_MAINTENANCE_INTERVAL_MS, Math.max(1000, margin / 4))),
            'partitioning.maintenanceIntervalMs',
          ),
          'partitioning.maintenanceIntervalMs',
        );
  if (maintenanceIntervalMs > margin / 2) {
    throw new Error(
      `nestjs-idempotency: partitioning.maintenanceIntervalMs (${maintenanceIntervalMs}${partitioning.maintenanceIntervalMs === undefined ? ', the default' : ''}) must be at most half of aheadMs - ttlMs - lockTimeoutMs (${margin}), or new keys could find no partition between two passes. Raise aheadMs${partitioning.maintenanceIntervalMs === undefined ? '' : ' or lower the interval'}.`,
    );
  }
  // Partitions are named by their start to the second.
  if (partitionMs % 1000 !== 0) {
    throw new Error(
      `nestjs-idempotency: partitioning.partitionMs must be a whole number of seconds, got ${partitionMs}.`,
    );
  }
  // A DETACH waiting on a long transaction gives way to the next pass, and never holds an
  // application's shutdown (which waits for the pass) for more than a minute.
  const interval = module.purgeIntervalMs || IDEMPOTENCY_DEFAULTS.purgeIntervalMs;
  return {
    partitionMs,
    aheadMs,
    claimReachMs: reach,
    maintenanceIntervalMs,
    detachTimeoutMs: Math.min(60_000, Math.max(1000, interval / 2)),
  };
}

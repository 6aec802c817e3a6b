import type {
  FingerprintOptions,
  IdempotencyModuleOptions,
  IdempotencyRequestInfo,
  IdempotencyRouteOptions,
} from './interfaces/idempotency-options.interface';
import type { IdempotencyOutcomeEvent } from './interfaces/idempotency-outcome.interface';
import type { IdempotencyPartitioning } from './postgres/store/idempotency-partitions';
import { defaultScope } from './protocol/default-scope';
import { replayableHeaderNames } from './protocol/replayable-headers';
import { isStoredStatusByDefault } from './protocol/response-policy';

/** The defaults of every option, in one place. */
export const IDEMPOTENCY_DEFAULTS = {
  headerName: 'Idempotency-Key',
  ttlMs: 86_400_000,
  lockTimeoutMs: 60_000,
  storeTimeoutMs: 5_000,
  purgeIntervalMs: 60_000,
  purgeBatchSize: 1_000,
  maxResponseBytes: 1_048_576,
  waitTimeoutMs: 10_000,
  partitionMs: 86_400_000,
  partitionAheadMs: 3 * 86_400_000,
} as const;

/** Module-wide settings with every default applied; built once at start-up. */
export interface ResolvedModuleSettings {
  /** Lower-case, for lookups. */
  headerName: string;
  /** As configured, for messages. */
  headerDisplayName: string;
  autoMethods: ReadonlySet<string>;
  storeTimeoutMs: number;
  purgeIntervalMs: number;
  purgeBatchSize: number;
  onOutcome: ((event: IdempotencyOutcomeEvent) => void) | undefined;
  warnOnQueriesOutsideTransaction: boolean;
  logRawKeys: boolean;
  route: IdempotencyRouteOptions;
}

/** One route's settings with module defaults and its `@Idempotent()` overrides applied. */
export interface ResolvedRouteSettings {
  required: boolean;
  ttlMs: number;
  lockTimeoutMs: number;
  fingerprint: FingerprintOptions | undefined;
  excludedFields: ReadonlySet<string>;
  storeStatus: (status: number) => boolean;
  replayHeaders: readonly string[];
  maxResponseBytes: number;
  scope: (request: IdempotencyRequestInfo) => string;
  transactional: boolean;
  rollbackOnClientError: boolean;
  concurrency: 'reject' | 'wait';
  waitTimeoutMs: number;
}

/** Applies the module-wide defaults without touching the caller's object. */
export function resolveModuleSettings(options: IdempotencyModuleOptions): ResolvedModuleSettings {
  const {
    headerName,
    autoMethods,
    storeTimeoutMs,
    purgeIntervalMs,
    purgeBatchSize,
    onOutcome,
    store,
    tableName,
    partitioning,
    warnOnQueriesOutsideTransaction,
    logRawKeys,
    ...route
  } = options;
  return {
    headerName: (headerName ?? IDEMPOTENCY_DEFAULTS.headerName).toLowerCase(),
    headerDisplayName: headerName ?? IDEMPOTENCY_DEFAULTS.headerName,
    autoMethods: new Set((autoMethods ?? []).map((method) => method.toUpperCase())),
    storeTimeoutMs: timerDelay(
      storeTimeoutMs,
      IDEMPOTENCY_DEFAULTS.storeTimeoutMs,
      'storeTimeoutMs',
    ),
    purgeIntervalMs:
      purgeIntervalMs === 0
        ? 0
        : timerDelay(purgeIntervalMs, IDEMPOTENCY_DEFAULTS.purgeIntervalMs, 'purgeIntervalMs'),
    purgeBatchSize: wholeNumber(
      positive(purgeBatchSize, IDEMPOTENCY_DEFAULTS.purgeBatchSize, 'purgeBatchSize'),
      'purgeBatchSize',
    ),
    onOutcome,
    warnOnQueriesOutsideTransaction:
      warnOnQueriesOutsideTransaction ?? process.env.NODE_ENV !== 'production',
    logRawKeys: logRawKeys ?? false,
    route,
  };
}

/**
 * Settings of one route: its own options over the module's. `required` defaults to `true` on a
 * decorated route and `false` on one covered by `autoMethods`.
 */
export function resolveRouteSettings(
  module: IdempotencyRouteOptions,
  route: IdempotencyRouteOptions,
  requiredByDefault: boolean,
): ResolvedRouteSettings {
  const merged: IdempotencyRouteOptions = { ...module, ...stripUndefined(route) };
  // Fingerprint settings are independent of each other, so a route's are merged field by field.
  const fingerprint =
    module.fingerprint || route.fingerprint
      ? { ...module.fingerprint, ...stripUndefined(route.fingerprint ?? {}) }
      : undefined;
  return {
    required: merged.required ?? requiredByDefault,
    ttlMs: positive(merged.ttlMs, IDEMPOTENCY_DEFAULTS.ttlMs, 'ttlMs'),
    lockTimeoutMs: positive(
      merged.lockTimeoutMs,
      IDEMPOTENCY_DEFAULTS.lockTimeoutMs,
      'lockTimeoutMs',
    ),
    fingerprint,
    excludedFields: new Set(fingerprint?.excludeFields ?? []),
    storeStatus: merged.storeStatus ?? isStoredStatusByDefault,
    replayHeaders: replayableHeaderNames(merged.replayHeaders),
    maxResponseBytes: positive(
      merged.maxResponseBytes,
      IDEMPOTENCY_DEFAULTS.maxResponseBytes,
      'maxResponseBytes',
    ),
    scope: merged.scope ?? defaultScope,
    transactional: merged.transactional ?? false,
    rollbackOnClientError: merged.rollbackOnClientError ?? false,
    concurrency: merged.concurrency ?? (merged.transactional ? 'wait' : 'reject'),
    waitTimeoutMs: timerDelay(
      merged.waitTimeoutMs,
      IDEMPOTENCY_DEFAULTS.waitTimeoutMs,
      'waitTimeoutMs',
    ),
  };
}

/**
 * The partitioning of the module's table with defaults applied, or `undefined` for an ordinary
 * table. Partitions must reach past the expiry of any claim written now.
 */
export function resolvePartitioning(
  options: IdempotencyModuleOptions,
): IdempotencyPartitioning | undefined {
  const { partitioning } = options;
  if (partitioning === undefined) {
    return undefined;
  }
  if (options.purgeIntervalMs === 0) {
    throw new Error(
      'nestjs-idempotency: partitioning needs a purgeIntervalMs: its passes create the partitions that new keys need, not only drop the expired ones.',
    );
  }
  const partitionMs = positive(
    partitioning.partitionMs,
    IDEMPOTENCY_DEFAULTS.partitionMs,
    'partitioning.partitionMs',
  );
  const aheadMs = positive(
    partitioning.aheadMs,
    IDEMPOTENCY_DEFAULTS.partitionAheadMs,
    'partitioning.aheadMs',
  );
  const reach =
    positive(options.ttlMs, IDEMPOTENCY_DEFAULTS.ttlMs, 'ttlMs') +
    positive(options.lockTimeoutMs, IDEMPOTENCY_DEFAULTS.lockTimeoutMs, 'lockTimeoutMs');
  if (aheadMs <= reach) {
    throw new Error(
      `nestjs-idempotency: partitioning.aheadMs (${aheadMs}) must exceed ttlMs + lockTimeoutMs (${reach}), or new keys would find no partition.`,
    );
  }
  // Partitions are named by their start to the second.
  if (partitionMs % 1000 !== 0) {
    throw new Error(
      `nestjs-idempotency: partitioning.partitionMs must be a whole number of seconds, got ${partitionMs}.`,
    );
  }
  // A DETACH waiting on a long transaction gives way to the next pass, which creates partitions,
  // and never holds an application's shutdown (which waits for the pass) for more than a minute.
  const interval = options.purgeIntervalMs ?? IDEMPOTENCY_DEFAULTS.purgeIntervalMs;
  return {
    partitionMs,
    aheadMs,
    detachTimeoutMs: Math.min(60_000, Math.max(1000, interval / 2)),
  };
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) {
    return fallback;
  }
  if (!Number.isFinite(value) || value <= 0) {
    throw new Error(`nestjs-idempotency: ${name} must be a positive number, got ${value}.`);
  }
  return value;
}

/** Largest delay Node's timers honour; a larger one silently fires after 1 ms. */
const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

function timerDelay(value: number | undefined, fallback: number, name: string): number {
  const delay = positive(value, fallback, name);
  if (delay > MAX_TIMER_DELAY_MS) {
    throw new Error(
      `nestjs-idempotency: ${name} must be at most ${MAX_TIMER_DELAY_MS} ms, got ${delay}.`,
    );
  }
  return delay;
}

function wholeNumber(value: number, name: string): number {
  if (!Number.isInteger(value)) {
    throw new Error(`nestjs-idempotency: ${name} must be a whole number, got ${value}.`);
  }
  return value;
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(value).filter(([, entry]) => entry !== undefined),
  ) as Partial<T>;
}

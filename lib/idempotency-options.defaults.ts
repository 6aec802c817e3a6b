import type {
  FingerprintOptions,
  IdempotencyModuleOptions,
  IdempotencyRequestInfo,
  IdempotencyRouteOptions,
  IdempotencyStepsOptions,
} from './interfaces/idempotency-options.interface';
import type { IdempotencyOutcomeEvent } from './interfaces/idempotency-outcome.interface';
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
  statementTimeoutMs: 30_000,
  maxStepResultBytes: 65_536,
} as const;

/** A step key secret shorter than this is refused: an HMAC key should be as long as its output. */
const MIN_STEP_KEY_SECRET_BYTES = 32;

/** Every option `@Idempotent()` takes, to refuse a misspelt or outdated one at start-up. */
const ROUTE_OPTION_NAMES = [
  'required',
  'ttlMs',
  'lockTimeoutMs',
  'fingerprint',
  'storeStatus',
  'replayHeaders',
  'maxResponseBytes',
  'scope',
  'transactional',
  'rollbackOnClientError',
  'concurrency',
  'waitTimeoutMs',
  'statementTimeoutMs',
  'messageKey',
] as const satisfies readonly (keyof IdempotencyRouteOptions)[];

/** Every option of the module (its extras are taken off before the options are resolved). */
const MODULE_OPTION_NAMES = [
  ...ROUTE_OPTION_NAMES,
  'headerName',
  'autoMethods',
  'storeTimeoutMs',
  'purgeIntervalMs',
  'purgeBatchSize',
  'onOutcome',
  'logRawKeys',
  'logOutcomes',
  'telemetry',
  'steps',
] as const satisfies readonly (keyof IdempotencyModuleOptions)[];

// Compile-time completeness: an option added to an interface but not to its list fails here.
type Unlisted<T, Names extends readonly PropertyKey[]> = Exclude<keyof T, Names[number]>;
export const ROUTE_OPTIONS_LISTED: [
  Unlisted<IdempotencyRouteOptions, typeof ROUTE_OPTION_NAMES>,
] extends [never]
  ? true
  : never = true;
export const MODULE_OPTIONS_LISTED: [
  Unlisted<IdempotencyModuleOptions, typeof MODULE_OPTION_NAMES>,
] extends [never]
  ? true
  : never = true;

/** Options that moved to `postgresStore()` in 0.2, named in the error that refuses them. */
const POSTGRES_STORE_OPTIONS = new Set([
  'tableName',
  'partitioning',
  'dataSourceName',
  'warnOnQueriesOutsideTransaction',
]);

/** Refuses an option the module does not know, which would otherwise be ignored in silence. */
function assertKnownOptions(options: object, known: readonly string[], where: string): void {
  for (const name of Object.keys(options)) {
    if (known.includes(name)) {
      continue;
    }
    throw new Error(
      POSTGRES_STORE_OPTIONS.has(name)
        ? `nestjs-idempotency: ${name} is an option of postgresStore() from 'nestjs-idempotency/postgres' (since 0.2), not of ${where}.`
        : `nestjs-idempotency: unknown option ${JSON.stringify(name)} in ${where}.`,
    );
  }
}

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
  logRawKeys: boolean;
  logOutcomes: boolean;
  telemetry: boolean;
  /** `null` when the module has no `steps` options. */
  steps: ResolvedStepsSettings | null;
  route: IdempotencyRouteOptions;
}

/** The recovery points' settings (see `IdempotencyStepsOptions`). */
export interface ResolvedStepsSettings {
  keySecret: Buffer;
  maxResultBytes: number;
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
  /** 0: no bound. */
  statementTimeoutMs: number;
  messageKey: ((data: unknown, context: unknown) => string | undefined) | undefined;
}

/** Applies the module-wide defaults without touching the caller's object. */
export function resolveModuleSettings(options: IdempotencyModuleOptions): ResolvedModuleSettings {
  assertKnownOptions(options, MODULE_OPTION_NAMES, 'the IdempotencyModule options');
  const {
    headerName,
    autoMethods,
    storeTimeoutMs,
    purgeIntervalMs,
    purgeBatchSize,
    onOutcome,
    logRawKeys,
    logOutcomes,
    telemetry,
    steps,
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
      positiveOption(purgeBatchSize, IDEMPOTENCY_DEFAULTS.purgeBatchSize, 'purgeBatchSize'),
      'purgeBatchSize',
    ),
    onOutcome,
    logRawKeys: logRawKeys ?? false,
    logOutcomes: logOutcomes ?? false,
    telemetry: telemetry ?? true,
    steps: steps ? resolveSteps(steps) : null,
    route,
  };
}

function resolveSteps(steps: IdempotencyStepsOptions): ResolvedStepsSettings {
  assertKnownOptions(steps, ['keySecret', 'maxResultBytes'], 'the steps options');
  const keySecret =
    typeof steps.keySecret === 'string' ? Buffer.from(steps.keySecret) : steps.keySecret;
  if (!Buffer.isBuffer(keySecret) || keySecret.length < MIN_STEP_KEY_SECRET_BYTES) {
    throw new Error(
      `nestjs-idempotency: steps.keySecret must be a string or Buffer of at least ${MIN_STEP_KEY_SECRET_BYTES} bytes.`,
    );
  }
  return {
    keySecret: Buffer.from(keySecret),
    maxResultBytes: wholeNumber(
      positiveOption(
        steps.maxResultBytes,
        IDEMPOTENCY_DEFAULTS.maxStepResultBytes,
        'steps.maxResultBytes',
      ),
      'steps.maxResultBytes',
    ),
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
  where = '@Idempotent()',
): ResolvedRouteSettings {
  assertKnownOptions(route, ROUTE_OPTION_NAMES, where);
  const merged: IdempotencyRouteOptions = { ...module, ...stripUndefined(route) };
  // Fingerprint settings are independent of each other, so a route's are merged field by field.
  const fingerprint =
    module.fingerprint || route.fingerprint
      ? { ...module.fingerprint, ...stripUndefined(route.fingerprint ?? {}) }
      : undefined;
  return {
    required: merged.required ?? requiredByDefault,
    ttlMs: positiveOption(merged.ttlMs, IDEMPOTENCY_DEFAULTS.ttlMs, 'ttlMs'),
    lockTimeoutMs: positiveOption(
      merged.lockTimeoutMs,
      IDEMPOTENCY_DEFAULTS.lockTimeoutMs,
      'lockTimeoutMs',
    ),
    fingerprint,
    excludedFields: new Set(fingerprint?.excludeFields ?? []),
    storeStatus: merged.storeStatus ?? isStoredStatusByDefault,
    replayHeaders: replayableHeaderNames(merged.replayHeaders),
    maxResponseBytes: positiveOption(
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
    // As PostgreSQL's statement_timeout: 0 turns it off, any other value is whole milliseconds.
    statementTimeoutMs:
      merged.statementTimeoutMs === 0
        ? 0
        : wholeNumber(
            timerDelay(
              merged.statementTimeoutMs,
              IDEMPOTENCY_DEFAULTS.statementTimeoutMs,
              'statementTimeoutMs',
            ),
            'statementTimeoutMs',
          ),
    messageKey: merged.messageKey,
  };
}

/** A positive number option, or its default; anything else stops the start-up. */
export function positiveOption(value: number | undefined, fallback: number, name: string): number {
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

/** A positive delay that Node's timers honour (`positiveOption` with an upper bound). */
export function timerDelay(value: number | undefined, fallback: number, name: string): number {
  const delay = positiveOption(value, fallback, name);
  if (delay > MAX_TIMER_DELAY_MS) {
    throw new Error(
      `nestjs-idempotency: ${name} must be at most ${MAX_TIMER_DELAY_MS} ms, got ${delay}.`,
    );
  }
  return delay;
}

export function wholeNumber(value: number, name: string): number {
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

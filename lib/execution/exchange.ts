import type { RouteIdentity } from '../http/route-plan';
import type { ResolvedRouteSettings } from '../idempotency-options.defaults';
import { sha256 } from '../protocol/request-fingerprint';
import type { ClaimRequest } from '../store/claim-result.interface';

/**
 * What outcome events say of a request, known before its key is parsed. A class, not a literal:
 * every request makes one, and one shape with its fields set from the start keeps V8's property
 * access fast where the steps add durations along the way.
 */
export class ReportedRequest {
  /** Set once the claim has answered. */
  claimDurationMs: number | undefined = undefined;
  /** Set once the handler has ended. */
  handlerDurationMs: number | undefined = undefined;
  /**
   * Part of `claimDurationMs` spent waiting for the request that held the key (`'wait'` mode);
   * set when the claim waited.
   */
  waitDurationMs: number | undefined = undefined;
  /** Set once the request's outcome has been counted in the metrics, which count each request once. */
  outcomeCounted = false;
  /** The key, once it is known to be valid. */
  protected validKey: string | undefined = undefined;
  private hashOfKey: string | undefined = undefined;

  constructor(
    readonly request: Record<PropertyKey, unknown>,
    readonly route: RouteIdentity,
    readonly method: string,
    readonly path: string,
    /** `performance.now()` when the interceptor took the request. */
    readonly startedAt: number,
  ) {}

  /** Records the request's key, once it is known to be valid. */
  withKey(key: string): this {
    this.validKey = key;
    return this;
  }

  /** SHA-256 of the key, once known to be valid; computed when first read (logs, events). */
  get keyHash(): string | undefined {
    if (this.validKey === undefined) {
      return undefined;
    }
    this.hashOfKey ??= sha256(this.validKey);
    return this.hashOfKey;
  }
}

/** One request on an idempotent route, as it moves through claim, execution and recording. */
export class Exchange extends ReportedRequest {
  /**
   * `performance.now()` as the last claim attempt was sent: a lease it won ends after that.
   * Set by lease mode only.
   */
  claimSentAt: number | undefined = undefined;

  constructor(
    reported: ReportedRequest,
    readonly response: unknown,
    readonly settings: ResolvedRouteSettings,
    readonly capturable: boolean,
    readonly claim: ClaimRequest,
  ) {
    super(reported.request, reported.route, reported.method, reported.path, reported.startedAt);
    this.validKey = claim.key;
  }

  /** SHA-256 of the key, as logs show it (computed when first read). */
  override get keyHash(): string {
    return super.keyHash as string;
  }
}

/** How the handler ended: its last value, or what it threw. */
export type HandlerResult = { ok: true; value: unknown } | { ok: false; error: unknown };

/**
 * A handler's result, whether Nest refused the request in its pipes before the route method
 * ran, and how long it took.
 */
export type HandlerOutcome = HandlerResult & { refusedBeforeHandler: boolean; durationMs: number };

/** A finished execution, to be recorded: the status, and the body to send (and store). */
export interface Recordable {
  status: number;
  body: string | undefined;
}

/** What to do with a handler's outcome (see `ExecutionSteps.decide`). */
export type RecordDecision =
  | { kind: 'store'; recordable: Recordable }
  | ({ kind: 'not-replayable' } & Unrecorded)
  | ({ kind: 'release'; notStarted: boolean } & Unrecorded);

/** An outcome that is not stored for replay. */
export interface Unrecorded {
  status: number;
  /** Rethrow `error` (to the exception filters) instead of sending `send`. */
  rethrow: boolean;
  error?: unknown;
  send: unknown;
}

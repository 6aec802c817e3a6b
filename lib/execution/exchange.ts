import type { RouteIdentity } from '../http/route-plan';
import type { ResolvedRouteSettings } from '../idempotency-options.defaults';
import type { ClaimRequest } from '../store/claim-result.interface';

/** What outcome events say of a request, known before its key is parsed. */
export interface ReportedRequest {
  request: Record<PropertyKey, unknown>;
  route: RouteIdentity;
  method: string;
  path: string;
  /** `performance.now()` when the interceptor took the request. */
  startedAt: number;
  /** Set once the claim has answered. */
  claimDurationMs?: number;
  /** Set once the handler has ended. */
  handlerDurationMs?: number;
  /** SHA-256 of the key, once the key is known to be valid. */
  readonly keyHash?: string;
}

/** One request on an idempotent route, as it moves through claim, execution and recording. */
export interface Exchange extends ReportedRequest {
  response: unknown;
  settings: ResolvedRouteSettings;
  capturable: boolean;
  claim: ClaimRequest;
  /** SHA-256 of the key, as logs show it (computed when first read). */
  readonly keyHash: string;
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

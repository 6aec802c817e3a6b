import type { ResolvedRouteSettings } from '../idempotency-options.defaults';
import type { ClaimRequest } from '../storage/claim-result.interface';

/** One request on an idempotent route, as it moves through claim, execution and recording. */
export interface Exchange {
  request: Record<PropertyKey, unknown>;
  response: unknown;
  settings: ResolvedRouteSettings;
  capturable: boolean;
  /** `Controller.method`, for logs. */
  route: string;
  claim: ClaimRequest;
  /** SHA-256 of the key, as logs show it (computed when first read). */
  readonly keyHash: string;
  method: string;
  path: string;
}

/** How the handler ended: its last value, or what it threw. */
export type HandlerOutcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/** A finished execution, to be recorded: the status, and the body to send (and store). */
export interface Recordable {
  status: number;
  body: string | undefined;
}

/** What to do with a handler's outcome (see `ExecutionSteps.decide`). */
export type RecordDecision =
  | { kind: 'store'; recordable: Recordable }
  | ({ kind: 'not-replayable' } & Unrecorded)
  | ({ kind: 'release' } & Unrecorded);

/** An outcome that is not stored for replay. */
export interface Unrecorded {
  status: number;
  /** Rethrow `error` (to the exception filters) instead of sending `send`. */
  rethrow: boolean;
  error?: unknown;
  send: unknown;
}

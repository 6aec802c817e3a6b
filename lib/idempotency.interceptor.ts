import {
  type CallHandler,
  type ExecutionContext,
  HttpException,
  Inject,
  Injectable,
  Logger,
  type NestInterceptor,
} from '@nestjs/common';
import { HttpAdapterHost, Reflector } from '@nestjs/core';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  Observable,
  catchError,
  defaultIfEmpty,
  defer,
  from,
  last,
  map,
  mergeMap,
  of,
  throwError,
} from 'rxjs';
import { ResponseWriter } from './http/response-writer';
import { type RoutePlan, isStreamLike, takesOverResponse } from './http/route-plan';
import {
  type ResolvedModuleSettings,
  type ResolvedRouteSettings,
  resolveRouteSettings,
} from './idempotency-options.defaults';
import {
  HANDLED_REQUEST,
  IDEMPOTENT_METADATA,
  SKIP_IDEMPOTENCY_METADATA,
  TRANSACTION_MANAGER,
} from './idempotency.constants';
import {
  IdempotencyException,
  IdempotencyKeyInFlightException,
  IdempotencyKeyInvalidException,
  IdempotencyKeyMismatchException,
  IdempotencyKeyMissingException,
  IdempotencyRequestNotFingerprintableException,
  IdempotencyResponseNotReplayableException,
  IdempotencyStoreUnavailableException,
} from './idempotency.exceptions';
import { IDEMPOTENCY_SETTINGS } from './idempotency.module-definition';
import type {
  IdempotencyRequestInfo,
  IdempotencyRouteOptions,
} from './interfaces/idempotency-options.interface';
import type { IdempotencyOutcomeEvent } from './interfaces/idempotency-outcome.interface';
import { BodyTooDeepError } from './protocol/canonical-json';
import { parseIdempotencyKey } from './protocol/idempotency-key';
import { requestFingerprint, sha256 } from './protocol/request-fingerprint';
import { waitDelayMs } from './protocol/wait-backoff';
import type { ClaimHandle, ClaimRequest, ClaimResult } from './storage/claim-result.interface';
import { IdempotencyStore } from './storage/idempotency-store';
import type { StoredResponse } from './storage/stored-response.interface';
import {
  type IdempotencyTransactionHandle,
  type TransactionalClaimResult,
  TransactionalIdempotencyStore,
} from './storage/transactional-idempotency-store';
import { StoreTimeoutError, withTimeout } from './storage/with-timeout';
import { IdempotencyTransaction } from './transaction/idempotency-transaction.service';

const PASS: RoutePlan = { kind: 'pass' };

/** Scopes longer than this are stored as their hash, so any principal id fits the key column. */
const MAX_SCOPE_LENGTH = 200;

/** Retry-After of a duplicate that found the key held by another transaction. */
const BUSY_RETRY_AFTER_MS = 1000;

/** One request on an idempotent route, as it moves through claim, execution and recording. */
interface Exchange {
  request: Record<PropertyKey, unknown>;
  response: unknown;
  settings: ResolvedRouteSettings;
  capturable: boolean;
  route: string;
  claim: ClaimRequest;
  keyHash: string;
  method: string;
  path: string;
}

type HandlerOutcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/** A finished execution, to be recorded: the status, and the body to send (and store). */
interface Recordable {
  status: number;
  body: string | undefined;
}

/**
 * Runs each idempotent request once per key and replays the stored response to every retry.
 *
 * Applied per route by `@Idempotent()`, or to every route through `APP_INTERCEPTOR`
 * (`useGlobalInterceptor`); with both, a request is handled once. Subclass it and override the
 * protected hooks to change how keys, scopes, fingerprints and stored errors are made.
 */
@Injectable()
export class IdempotencyInterceptor implements NestInterceptor {
  protected readonly logger = new Logger('Idempotency');
  private readonly plans = new Map<unknown, RoutePlan>();
  private readonly writer: ResponseWriter;

  constructor(
    @Inject(IDEMPOTENCY_SETTINGS) protected readonly settings: ResolvedModuleSettings,
    protected readonly store: IdempotencyStore,
    protected readonly reflector: Reflector,
    protected readonly adapterHost: HttpAdapterHost,
    protected readonly transaction: IdempotencyTransaction,
  ) {
    this.writer = new ResponseWriter(adapterHost);
  }

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'http') {
      return next.handle();
    }
    const http = context.switchToHttp();
    const request = http.getRequest<Record<PropertyKey, unknown>>();
    if (request[HANDLED_REQUEST]) {
      return next.handle();
    }
    const plan = this.planFor(context);
    if (plan.kind === 'pass') {
      return next.handle();
    }
    const adapter = this.adapterHost.httpAdapter;
    const method = String(adapter.getRequestMethod(request)).toUpperCase();
    if (plan.kind === 'auto' && !this.settings.autoMethods.has(method)) {
      return next.handle();
    }
    const parsed = parseIdempotencyKey(this.readKeyHeader(request, this.settings.headerName));
    if (parsed.kind === 'missing' && !plan.settings.required) {
      return next.handle();
    }
    request[HANDLED_REQUEST] = true;
    const response = http.getResponse<unknown>();
    if (parsed.kind === 'missing') {
      return this.reject(
        response,
        new IdempotencyKeyMissingException(this.settings.headerDisplayName),
      );
    }
    if (parsed.kind === 'invalid') {
      return this.reject(response, new IdempotencyKeyInvalidException(parsed.reason));
    }

    const info: IdempotencyRequestInfo = {
      method,
      url: String(adapter.getRequestUrl(request)),
      body: request.body,
      raw: request,
    };
    let fingerprint: string | null;
    try {
      fingerprint = this.computeFingerprint(info, plan.settings);
    } catch (error) {
      if (error instanceof BodyTooDeepError) {
        return this.reject(
          response,
          new IdempotencyRequestNotFingerprintableException(error.message),
        );
      }
      throw error;
    }
    const exchange: Exchange = {
      request,
      response,
      settings: plan.settings,
      capturable: plan.capturable,
      route: plan.route,
      claim: {
        scope: this.resolveScope(info, plan.settings),
        key: parsed.key,
        fingerprint,
        lockTimeoutMs: plan.settings.lockTimeoutMs,
        ttlMs: plan.settings.ttlMs,
      },
      keyHash: sha256(parsed.key),
      method,
      path: info.url,
    };
    return plan.settings.transactional
      ? this.interceptInTransaction(exchange, next)
      : this.interceptWithLease(exchange, next);
  }

  /**
   * Reads every occurrence of the key header. Repeated headers are counted from the raw header
   * list because Node joins their values with `", "`.
   */
  protected readKeyHeader(request: Record<PropertyKey, unknown>, headerName: string): string[] {
    const incoming = (request.raw ?? request) as {
      rawHeaders?: string[];
      headers?: Record<string, string | string[] | undefined>;
    };
    if (incoming.rawHeaders) {
      const values: string[] = [];
      for (let i = 0; i < incoming.rawHeaders.length; i += 2) {
        if (incoming.rawHeaders[i].toLowerCase() === headerName) {
          values.push(incoming.rawHeaders[i + 1]);
        }
      }
      return values;
    }
    const value = incoming.headers?.[headerName];
    return value === undefined ? [] : Array.isArray(value) ? value : [value];
  }

  /** The scope (principal) of the request's key; long ones are hashed to fit the column. */
  protected resolveScope(info: IdempotencyRequestInfo, settings: ResolvedRouteSettings): string {
    const scope = settings.scope(info);
    return scope.length > MAX_SCOPE_LENGTH ? `sha256:${sha256(scope)}` : scope;
  }

  /** The request fingerprint compared on every reuse of a key; `null` when turned off. */
  protected computeFingerprint(
    info: IdempotencyRequestInfo,
    settings: ResolvedRouteSettings,
  ): string | null {
    return requestFingerprint(info, settings.fingerprint, settings.excludedFields);
  }

  /**
   * The body of a stored error response: what Nest's default exception filter sends for it, so a
   * replay looks like the first answer.
   */
  protected renderStoredError(error: HttpException): unknown {
    const body = error.getResponse();
    return typeof body === 'object' && body !== null
      ? body
      : { statusCode: error.getStatus(), message: body };
  }

  // ---------------------------------------------------------------------------------------------
  // Lease mode: the claim commits on its own, the handler runs, the response is stored after it.
  // ---------------------------------------------------------------------------------------------

  private interceptWithLease(exchange: Exchange, next: CallHandler): Observable<unknown> {
    return defer(() => this.claimWithLease(exchange)).pipe(
      catchError((error: unknown) => this.storeUnavailable(exchange, 'Claim', error)),
      mergeMap((result) => {
        if (result.kind !== 'claimed') {
          return this.answerExisting(result, exchange);
        }
        this.report(exchange, 'claimed');
        return this.executeWithLease(result.handle, exchange, next);
      }),
    );
  }

  /** Claims the key; in `wait` mode, a duplicate polls until the first one finishes or fails. */
  private async claimWithLease(exchange: Exchange): Promise<ClaimResult> {
    const deadline = Date.now() + exchange.settings.waitTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      const result = await this.boundedClaim(exchange.claim);
      const delay = waitDelayMs(attempt);
      if (
        result.kind !== 'in-flight' ||
        exchange.settings.concurrency === 'reject' ||
        Date.now() + delay > deadline
      ) {
        return result;
      }
      await sleep(delay);
    }
  }

  private executeWithLease(
    handle: ClaimHandle,
    exchange: Exchange,
    next: CallHandler,
  ): Observable<unknown> {
    const run = this.runHandler(next).pipe(
      // The record is written before the response leaves: a retry that arrives right after the
      // client got its answer must find it.
      mergeMap((outcome) => from(this.recordWithLease(handle, exchange, outcome))),
    );
    if (exchange.capturable) {
      return run;
    }
    // A handler that writes its own response (@Res()) answers before anything could be recorded
    // after it, so its key is marked spent before it runs: a retry must never run it again.
    return defer(() =>
      this.bounded(this.store.markNotReplayable(handle, null, exchange.settings.ttlMs)),
    ).pipe(
      catchError((error: unknown) => {
        // Fail closed: the handler has not run, and must not run unrecorded.
        void this.release(handle, exchange, 503, error);
        return this.storeUnavailable(exchange, 'Marking', error);
      }),
      mergeMap(() => run),
    );
  }

  private async recordWithLease(
    handle: ClaimHandle,
    exchange: Exchange,
    outcome: HandlerOutcome,
  ): Promise<unknown> {
    const decision = this.decide(exchange, outcome);
    switch (decision.kind) {
      case 'release':
        await this.release(handle, exchange, decision.status, decision.error);
        if (decision.rethrow) {
          throw decision.error;
        }
        return decision.send;
      case 'not-replayable':
        await this.write(exchange, 'not-replayable', decision.status, () =>
          this.store.markNotReplayable(handle, decision.status, exchange.settings.ttlMs),
        );
        if (decision.rethrow) {
          throw decision.error;
        }
        return decision.send;
      case 'store': {
        const stored = this.toStored(exchange, decision.recordable);
        await this.write(exchange, 'completed', stored.status, () =>
          this.store.complete(handle, stored, exchange.settings.ttlMs),
        );
        return decision.recordable.body;
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Transactional mode: claim, handler writes and stored response commit together.
  // ---------------------------------------------------------------------------------------------

  private interceptInTransaction(exchange: Exchange, next: CallHandler): Observable<unknown> {
    // buildPlan refuses transactional routes on any other store.
    const store = this.store as TransactionalIdempotencyStore;
    return defer(() => this.claimInTransaction(store, exchange)).pipe(
      catchError((error: unknown) => this.storeUnavailable(exchange, 'Transactional claim', error)),
      mergeMap((result) => {
        if (result.kind !== 'claimed') {
          return this.answerExisting(result, exchange);
        }
        this.report(exchange, 'claimed');
        return this.executeInTransaction(result.transaction, exchange, next);
      }),
    );
  }

  /**
   * Replays a finished key with one read; otherwise claims it in a new transaction. A duplicate of
   * a key that another transaction holds polls with that one read, holding no connection between
   * looks, until the holder commits (replay), rolls back (claim it) or the wait ends (409).
   */
  private async claimInTransaction(
    store: TransactionalIdempotencyStore,
    exchange: Exchange,
  ): Promise<
    | Extract<TransactionalClaimResult, { kind: 'claimed' }>
    | Exclude<ClaimResult, { kind: 'claimed' }>
  > {
    const deadline = Date.now() + exchange.settings.waitTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      let result: TransactionalClaimResult | null = await this.bounded(
        store.lookup(exchange.claim),
      );
      if (result === null) {
        result = await this.boundedTransactionalClaim(store, exchange.claim);
      }
      if (result.kind !== 'busy' && result.kind !== 'in-flight') {
        return result;
      }
      const delay = waitDelayMs(attempt);
      if (exchange.settings.concurrency === 'reject' || Date.now() + delay > deadline) {
        return result.kind === 'busy'
          ? { kind: 'in-flight', retryAfterMs: BUSY_RETRY_AFTER_MS }
          : result;
      }
      await sleep(delay);
    }
  }

  private executeInTransaction(
    transaction: IdempotencyTransactionHandle,
    exchange: Exchange,
    next: CallHandler,
  ): Observable<unknown> {
    exchange.request[TRANSACTION_MANAGER] = transaction.manager;
    const active = { manager: transaction.manager, route: exchange.route };
    // Always taken: a client error must still be storable when a failed statement of the handler
    // has aborted the transaction (see IdempotencyTransactionHandle.complete).
    return defer(() => transaction.savepoint()).pipe(
      // Everything the handler starts runs in the transaction's async context.
      mergeMap(
        () =>
          new Observable<HandlerOutcome>((subscriber) =>
            this.transaction.run(active, () => this.runHandler(next).subscribe(subscriber)),
          ),
      ),
      mergeMap((outcome) => from(this.recordInTransaction(transaction, exchange, outcome))),
      catchError((error: unknown) => {
        if (error === RECORDING_FAILED) {
          return this.storeUnavailable(exchange, 'Commit', error);
        }
        return throwError(() => error);
      }),
      // A savepoint that failed (the connection broke) leaves the transaction to roll back.
      catchError((error: unknown) => {
        void transaction.rollback();
        return throwError(() => error);
      }),
    );
  }

  private async recordInTransaction(
    transaction: IdempotencyTransactionHandle,
    exchange: Exchange,
    outcome: HandlerOutcome,
  ): Promise<unknown> {
    const decision = this.decide(exchange, outcome);
    if (decision.kind === 'release') {
      await transaction.rollback();
      this.report(exchange, 'released', { status: decision.status, error: decision.error });
      if (decision.rethrow) {
        throw decision.error;
      }
      return decision.send;
    }
    try {
      if (decision.kind === 'not-replayable') {
        await transaction.markNotReplayable(decision.status, exchange.settings.ttlMs);
      } else {
        if (decision.recordable.status >= 400 && exchange.settings.rollbackOnClientError) {
          await transaction.rollbackToSavepoint();
        }
        const stored = this.toStored(exchange, decision.recordable);
        await transaction.complete(stored, exchange.settings.ttlMs);
      }
      // The response leaves only after the commit: what the client sees is what a retry replays.
      await this.bounded(transaction.commit());
    } catch (error) {
      // Either everything committed or nothing did; both make a retry safe (replay or rerun).
      await transaction.rollback();
      this.logger.error(`Committing key ${this.keyLabel(exchange)} failed: ${String(error)}`);
      throw RECORDING_FAILED;
    }
    const status = decision.kind === 'store' ? decision.recordable.status : decision.status;
    this.report(exchange, decision.kind === 'store' ? 'completed' : 'not-replayable', {
      status: status ?? undefined,
    });
    if (decision.kind === 'not-replayable' && decision.rethrow) {
      throw decision.error;
    }
    return decision.kind === 'store' ? decision.recordable.body : decision.send;
  }

  // ---------------------------------------------------------------------------------------------
  // Shared steps
  // ---------------------------------------------------------------------------------------------

  /** Runs the handler to its last value, turning an error into an outcome to record. */
  private runHandler(next: CallHandler): Observable<HandlerOutcome> {
    return defer(() => next.handle()).pipe(
      defaultIfEmpty(undefined),
      last(),
      map((value): HandlerOutcome => ({ ok: true, value })),
      catchError((error: unknown) => of<HandlerOutcome>({ ok: false, error })),
    );
  }

  /**
   * What to record for a handler's outcome; the one place that decides between storing,
   * marking not replayable and releasing. Sets the status and type of what it will send.
   */
  private decide(exchange: Exchange, outcome: HandlerOutcome): RecordDecision {
    const { settings, response } = exchange;
    if (!outcome.ok) {
      const error = outcome.error;
      const status = error instanceof HttpException ? error.getStatus() : 500;
      if (!(error instanceof HttpException) || !settings.storeStatus(status)) {
        return { kind: 'release', status, error, rethrow: true, send: undefined };
      }
      if (!exchange.capturable) {
        // The exception filters render this one as usual; the key stays spent.
        return { kind: 'not-replayable', status, error, rethrow: true, send: undefined };
      }
      this.writer.prepareJsonError(response, status);
      return this.decideBody(exchange, {
        status,
        body: JSON.stringify(this.renderStoredError(error)),
      });
    }
    const status = this.writer.statusOf(response);
    if (!exchange.capturable || isStreamLike(outcome.value)) {
      return { kind: 'not-replayable', status, rethrow: false, send: outcome.value };
    }
    return this.decideBody(exchange, {
      status,
      body: this.writer.serialize(response, outcome.value),
    });
  }

  private decideBody(exchange: Exchange, recordable: Recordable): RecordDecision {
    const size = recordable.body === undefined ? 0 : Buffer.byteLength(recordable.body, 'utf8');
    if (size > exchange.settings.maxResponseBytes) {
      return {
        kind: 'not-replayable',
        status: recordable.status,
        rethrow: false,
        send: recordable.body,
      };
    }
    if (!exchange.settings.storeStatus(recordable.status)) {
      return {
        kind: 'release',
        status: recordable.status,
        rethrow: false,
        send: recordable.body,
      };
    }
    return { kind: 'store', recordable };
  }

  private toStored(exchange: Exchange, recordable: Recordable): StoredResponse {
    return {
      status: recordable.status,
      headers: this.writer.captureHeaders(exchange.response, exchange.settings.replayHeaders),
      body: recordable.body === undefined ? null : Buffer.from(recordable.body, 'utf8'),
    };
  }

  private answerExisting(
    result: Exclude<ClaimResult, { kind: 'claimed' }>,
    exchange: Exchange,
  ): Observable<unknown> {
    switch (result.kind) {
      case 'replay':
        this.report(exchange, 'replayed', { status: result.response.status });
        return of(this.writer.replay(exchange.response, result.response));
      case 'in-flight':
        this.report(exchange, 'conflict', { status: 409 });
        return this.reject(
          exchange.response,
          new IdempotencyKeyInFlightException(result.retryAfterMs),
        );
      case 'mismatch':
        this.report(exchange, 'mismatch', { status: 422 });
        return this.reject(exchange.response, new IdempotencyKeyMismatchException());
      case 'not-replayable':
        this.report(exchange, 'not-replayable', { status: 410 });
        return this.reject(
          exchange.response,
          new IdempotencyResponseNotReplayableException(result.status),
        );
    }
  }

  /**
   * A lease-mode write after the handler ran. A failure is logged, not sent: the handler has run
   * and the client gets its real answer; without a record the key stays claimed until its lease
   * ends, so a retry before then gets 409, not a second execution.
   */
  private async write(
    exchange: Exchange,
    outcome: 'completed' | 'not-replayable',
    status: number | null,
    operation: () => Promise<boolean>,
  ): Promise<void> {
    try {
      const current = await this.bounded(operation());
      this.reportWrite(exchange, current, outcome, status ?? undefined);
    } catch (error) {
      this.report(exchange, 'store-error', { status: status ?? undefined, error });
      this.logger.error(
        `Recording key ${this.keyLabel(exchange)} (${outcome}) failed: ${String(error)}`,
      );
    }
  }

  private async release(
    handle: ClaimHandle,
    exchange: Exchange,
    status: number,
    cause: unknown,
  ): Promise<void> {
    try {
      const current = await this.bounded(this.store.release(handle));
      if (current) {
        this.report(exchange, 'released', { status, error: cause });
      } else {
        this.reportWrite(exchange, false, 'released', status);
      }
    } catch (error) {
      // The key stays claimed until its lease ends; a retry after that runs again.
      this.report(exchange, 'store-error', { status, error });
      this.logger.error(`Releasing key ${this.keyLabel(exchange)} failed: ${String(error)}`);
    }
  }

  private reportWrite(
    exchange: Exchange,
    current: boolean,
    outcome: 'completed' | 'not-replayable' | 'released',
    status: number | undefined,
  ): void {
    if (current) {
      this.report(exchange, outcome, { status });
      return;
    }
    this.report(exchange, 'lease-lost', { status });
    this.logger.warn(
      `Key ${this.keyLabel(exchange)} finished after its ${exchange.settings.lockTimeoutMs} ms lease was taken over; its result was not stored. Raise lockTimeoutMs above the route's slowest execution.`,
    );
  }

  private storeUnavailable(exchange: Exchange, step: string, error: unknown): Observable<never> {
    this.report(exchange, 'store-error', { status: 503, error });
    this.logger.error(`${step} of key ${this.keyLabel(exchange)} failed: ${String(error)}`);
    return this.reject(exchange.response, new IdempotencyStoreUnavailableException());
  }

  private reject(response: unknown, exception: IdempotencyException): Observable<never> {
    this.writer.prepareProblem(response, exception);
    return throwError(() => exception);
  }

  /**
   * A claim bounded by `storeTimeoutMs`. A claim that times out may still land once the database
   * answers; nobody would then hold it, and the key would be stuck until its lease ends although
   * the client was told to retry. So a late win is released at once (its token makes that safe).
   */
  private boundedClaim(request: ClaimRequest): Promise<ClaimResult> {
    const claim = this.store.claim(request);
    return this.bounded(claim).catch((error: unknown) => {
      if (error instanceof StoreTimeoutError) {
        claim
          .then((late) => (late.kind === 'claimed' ? this.store.release(late.handle) : false))
          .catch(() => undefined);
      }
      throw error;
    });
  }

  /** The same for a transactional claim: a late win is rolled back. */
  private boundedTransactionalClaim(
    store: TransactionalIdempotencyStore,
    request: ClaimRequest,
  ): Promise<TransactionalClaimResult> {
    const claim = store.claimInTransaction(request);
    return this.bounded(claim).catch((error: unknown) => {
      if (error instanceof StoreTimeoutError) {
        claim
          .then((late) => (late.kind === 'claimed' ? late.transaction.rollback() : undefined))
          .catch(() => undefined);
      }
      throw error;
    });
  }

  /** How a key appears in logs: its hash, or the key itself with `logRawKeys` (development). */
  private keyLabel(exchange: Exchange): string {
    return this.settings.logRawKeys ? JSON.stringify(exchange.claim.key) : `#${exchange.keyHash}`;
  }

  private bounded<T>(promise: Promise<T>): Promise<T> {
    return withTimeout(promise, this.settings.storeTimeoutMs);
  }

  private report(
    exchange: Exchange,
    outcome: IdempotencyOutcomeEvent['outcome'],
    extra: { status?: number; error?: unknown } = {},
  ): void {
    const hook = this.settings.onOutcome;
    if (!hook) {
      return;
    }
    try {
      hook({
        outcome,
        scope: exchange.claim.scope,
        keyHash: exchange.keyHash,
        ...(this.settings.logRawKeys ? { key: exchange.claim.key } : {}),
        method: exchange.method,
        path: exchange.path,
        ...extra,
      });
    } catch (error) {
      this.logger.warn(`onOutcome hook threw: ${String(error)}`);
    }
  }

  private planFor(context: ExecutionContext): RoutePlan {
    const handler = context.getHandler();
    let plan = this.plans.get(handler);
    if (plan === undefined) {
      plan = this.buildPlan(context);
      this.plans.set(handler, plan);
    }
    return plan;
  }

  private buildPlan(context: ExecutionContext): RoutePlan {
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(SKIP_IDEMPOTENCY_METADATA, targets)) {
      return PASS;
    }
    const options = this.reflector.getAllAndOverride<IdempotencyRouteOptions | undefined>(
      IDEMPOTENT_METADATA,
      targets,
    );
    if (options === undefined && this.settings.autoMethods.size === 0) {
      return PASS;
    }
    const route = `${context.getClass().name}.${context.getHandler().name}`;
    const settings = resolveRouteSettings(
      this.settings.route,
      options ?? {},
      options !== undefined,
    );
    const capturable = !takesOverResponse(context.getClass(), context.getHandler().name);
    if (settings.transactional && !(this.store instanceof TransactionalIdempotencyStore)) {
      throw new Error(
        `nestjs-idempotency: ${route} is transactional, but the store in use cannot run transactions.`,
      );
    }
    if (!capturable && settings.transactional) {
      // The handler would send its answer before the commit that makes it true.
      throw new Error(
        `nestjs-idempotency: ${route} writes its response with @Res() and cannot be transactional. Use @Res({ passthrough: true }).`,
      );
    }
    if (!capturable && options !== undefined) {
      this.logger.warn(
        `${route} writes its response with @Res(): its keys run once but are not replayable (410). Use @Res({ passthrough: true }) to make them replayable.`,
      );
    }
    return { kind: options === undefined ? 'auto' : 'decorated', settings, capturable, route };
  }
}

/** What to do with a handler's outcome (see `decide`). */
type RecordDecision =
  | { kind: 'store'; recordable: Recordable }
  | ({ kind: 'not-replayable' } & Unrecorded)
  | ({ kind: 'release' } & Unrecorded);

/** An outcome that is not stored for replay. */
interface Unrecorded {
  status: number;
  /** Rethrow `error` (to the exception filters) instead of sending `send`. */
  rethrow: boolean;
  error?: unknown;
  send: unknown;
}

/** Thrown inside the transactional pipeline when the commit (or a write before it) failed. */
const RECORDING_FAILED = new Error('nestjs-idempotency: recording in the transaction failed');

import {
  type CallHandler,
  type ExecutionContext,
  HttpException,
  Inject,
  Injectable,
  Logger,
  type NestInterceptor,
  StreamableFile,
} from '@nestjs/common';
import { RESPONSE_PASSTHROUGH_METADATA, ROUTE_ARGS_METADATA } from '@nestjs/common/constants';
import { RouteParamtypes } from '@nestjs/common/enums/route-paramtypes.enum';
import { HttpAdapterHost, Reflector } from '@nestjs/core';
import {
  type Observable,
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
import {
  type ResolvedModuleSettings,
  type ResolvedRouteSettings,
  resolveRouteSettings,
} from './idempotency-options.defaults';
import {
  HANDLED_REQUEST,
  IDEMPOTENT_METADATA,
  PROBLEM_CONTENT_TYPE,
  REPLAYED_HEADER,
  SKIP_IDEMPOTENCY_METADATA,
} from './idempotency.constants';
import {
  IdempotencyException,
  IdempotencyKeyInFlightException,
  IdempotencyKeyInvalidException,
  IdempotencyKeyMismatchException,
  IdempotencyKeyMissingException,
  IdempotencyResponseNotReplayableException,
  IdempotencyStoreUnavailableException,
} from './idempotency.exceptions';
import { IDEMPOTENCY_SETTINGS } from './idempotency.module-definition';
import type {
  IdempotencyRequestInfo,
  IdempotencyRouteOptions,
} from './interfaces/idempotency-options.interface';
import type { IdempotencyOutcomeEvent } from './interfaces/idempotency-outcome.interface';
import { parseIdempotencyKey } from './protocol/idempotency-key';
import { requestFingerprint, sha256 } from './protocol/request-fingerprint';
import type { ClaimHandle, ClaimRequest, ClaimResult } from './storage/claim-result.interface';
import { IdempotencyStore } from './storage/idempotency-store';
import type { StoredResponse } from './storage/stored-response.interface';
import { StoreTimeoutError, withTimeout } from './storage/with-timeout';

/** What the interceptor does on a route, decided once per handler. */
type RoutePlan =
  | { kind: 'pass' }
  | {
      kind: 'decorated' | 'auto';
      settings: ResolvedRouteSettings;
      /** `false` when the handler writes the response itself (`@Res()` without passthrough). */
      capturable: boolean;
    };

const PASS: RoutePlan = { kind: 'pass' };

/** Scopes longer than this are stored as their hash, so any principal id fits the key column. */
const MAX_SCOPE_LENGTH = 200;

/** One request on an idempotent route, as it moves through claim, execution and recording. */
interface Exchange {
  request: Record<PropertyKey, unknown>;
  response: unknown;
  settings: ResolvedRouteSettings;
  capturable: boolean;
  scope: string;
  key: string;
  keyHash: string;
  method: string;
  path: string;
}

type HandlerOutcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/**
 * Runs each idempotent request once per key and replays the stored response to every retry.
 *
 * Applied per route by `@Idempotent()`, or to every route through `APP_INTERCEPTOR`
 * (`useGlobalInterceptor`); with both, a request is handled once. Subclass it and override the
 * protected hooks to change how keys, scopes, fingerprints and bodies are read.
 */
@Injectable()
export class IdempotencyInterceptor implements NestInterceptor {
  protected readonly logger = new Logger('Idempotency');
  private readonly plans = new Map<unknown, RoutePlan>();

  constructor(
    @Inject(IDEMPOTENCY_SETTINGS) protected readonly settings: ResolvedModuleSettings,
    protected readonly store: IdempotencyStore,
    protected readonly reflector: Reflector,
    protected readonly adapterHost: HttpAdapterHost,
  ) {}

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
    const exchange: Exchange = {
      request,
      response,
      settings: plan.settings,
      capturable: plan.capturable,
      scope: this.resolveScope(info, plan.settings),
      key: parsed.key,
      keyHash: sha256(parsed.key),
      method,
      path: info.url,
    };
    const fingerprint = this.computeFingerprint(info, plan.settings);

    return defer(() =>
      this.boundedClaim({
        scope: exchange.scope,
        key: exchange.key,
        fingerprint,
        lockTimeoutMs: plan.settings.lockTimeoutMs,
        ttlMs: plan.settings.ttlMs,
      }),
    ).pipe(
      catchError((error: unknown) => {
        this.report(exchange, 'store-error', { status: 503, error });
        this.logger.error(`Claim of key ${exchange.keyHash} failed: ${String(error)}`);
        return this.reject(response, new IdempotencyStoreUnavailableException());
      }),
      mergeMap((result) => this.answer(result, exchange, next)),
    );
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

  private answer(result: ClaimResult, exchange: Exchange, next: CallHandler): Observable<unknown> {
    switch (result.kind) {
      case 'claimed':
        this.report(exchange, 'claimed');
        return this.execute(result.handle, exchange, next);
      case 'replay':
        this.report(exchange, 'replayed', { status: result.response.status });
        return of(this.replay(exchange.response, result.response));
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

  private execute(handle: ClaimHandle, exchange: Exchange, next: CallHandler): Observable<unknown> {
    const run = defer(() => next.handle()).pipe(
      defaultIfEmpty(undefined),
      last(),
      map((value): HandlerOutcome => ({ ok: true, value })),
      catchError((error: unknown) => of<HandlerOutcome>({ ok: false, error })),
      // The record is written before the response leaves: a retry that arrives right after the
      // client got its answer must find it.
      mergeMap((outcome) =>
        from(
          outcome.ok
            ? this.recordSuccess(handle, exchange, outcome.value)
            : this.recordFailure(handle, exchange, outcome.error),
        ),
      ),
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
        this.report(exchange, 'store-error', { status: 503, error });
        void this.release(handle, exchange, 503, error);
        return this.reject(exchange.response, new IdempotencyStoreUnavailableException());
      }),
      mergeMap(() => run),
    );
  }

  private async recordSuccess(
    handle: ClaimHandle,
    exchange: Exchange,
    value: unknown,
  ): Promise<unknown> {
    const status = this.statusOf(exchange.response);
    if (!exchange.capturable || isStreamLike(value)) {
      await this.markNotReplayable(handle, exchange, status);
      return value;
    }
    const body = this.serializeBody(exchange.response, value);
    return this.recordResponse(handle, exchange, status, body);
  }

  private async recordFailure(
    handle: ClaimHandle,
    exchange: Exchange,
    error: unknown,
  ): Promise<unknown> {
    const status = error instanceof HttpException ? error.getStatus() : 500;
    const stored = error instanceof HttpException && exchange.settings.storeStatus(status);
    if (!stored) {
      await this.release(handle, exchange, status, error);
      throw error;
    }
    if (!exchange.capturable) {
      // Already marked spent; the exception filters render this one as usual.
      await this.markNotReplayable(handle, exchange, status);
      throw error;
    }
    const adapter = this.adapterHost.httpAdapter;
    adapter.status(exchange.response, status);
    adapter.setHeader(exchange.response, 'Content-Type', 'application/json; charset=utf-8');
    return this.recordResponse(
      handle,
      exchange,
      status,
      JSON.stringify(this.renderStoredError(error)),
    );
  }

  /** Stores a serialized response (or marks it not replayable) and returns the body to send. */
  private async recordResponse(
    handle: ClaimHandle,
    exchange: Exchange,
    status: number,
    body: string | undefined,
  ): Promise<string | undefined> {
    const bytes = body === undefined ? null : Buffer.from(body, 'utf8');
    if (bytes !== null && bytes.length > exchange.settings.maxResponseBytes) {
      await this.markNotReplayable(handle, exchange, status);
      return body;
    }
    if (!exchange.settings.storeStatus(status)) {
      await this.release(handle, exchange, status, undefined);
      return body;
    }
    const stored: StoredResponse = {
      status,
      headers: this.captureHeaders(exchange.response, exchange.settings.replayHeaders),
      body: bytes,
    };
    try {
      const current = await this.bounded(
        this.store.complete(handle, stored, exchange.settings.ttlMs),
      );
      this.reportWrite(exchange, current, 'completed', status);
    } catch (error) {
      // The handler has run: the client gets its real answer. Without a record the key stays
      // claimed until its lease ends, so a retry before then gets 409, not a second execution.
      this.report(exchange, 'store-error', { status, error });
      this.logger.error(`Storing the response of key ${exchange.keyHash} failed: ${String(error)}`);
    }
    return body;
  }

  private async markNotReplayable(
    handle: ClaimHandle,
    exchange: Exchange,
    status: number | null,
  ): Promise<void> {
    try {
      const current = await this.bounded(
        this.store.markNotReplayable(handle, status, exchange.settings.ttlMs),
      );
      this.reportWrite(exchange, current, 'not-replayable', status ?? undefined);
    } catch (error) {
      this.report(exchange, 'store-error', { status: status ?? undefined, error });
      this.logger.error(
        `Marking key ${exchange.keyHash} as not replayable failed: ${String(error)}`,
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
      this.logger.error(`Releasing key ${exchange.keyHash} failed: ${String(error)}`);
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
      `Key ${exchange.keyHash} finished after its ${exchange.settings.lockTimeoutMs} ms lease was taken over; its result was not stored. Raise lockTimeoutMs above the route's slowest execution.`,
    );
  }

  private replay(response: unknown, stored: StoredResponse): string | undefined {
    const adapter = this.adapterHost.httpAdapter;
    adapter.status(response, stored.status);
    for (const [name, value] of Object.entries(stored.headers)) {
      adapter.setHeader(response, name, value);
    }
    adapter.setHeader(response, REPLAYED_HEADER, 'true');
    return stored.body === null ? undefined : stored.body.toString('utf8');
  }

  /**
   * Serializes a handler's result as the platform would, and sends that text, so that the first
   * answer and every replay carry the same bytes.
   */
  private serializeBody(response: unknown, value: unknown): string | undefined {
    if (value === undefined || value === null) {
      return undefined;
    }
    const adapter = this.adapterHost.httpAdapter;
    const hasType = adapter.getHeader(response, 'Content-Type') !== undefined;
    if (typeof value === 'object') {
      const text = JSON.stringify(value) as string | undefined;
      if (text !== undefined && !hasType) {
        adapter.setHeader(response, 'Content-Type', 'application/json; charset=utf-8');
      }
      return text;
    }
    if (!hasType) {
      adapter.setHeader(response, 'Content-Type', 'text/plain; charset=utf-8');
    }
    return String(value);
  }

  private captureHeaders(response: unknown, names: readonly string[]): Record<string, string> {
    const adapter = this.adapterHost.httpAdapter;
    const headers: Record<string, string> = {};
    for (const name of names) {
      const value: unknown = adapter.getHeader(response, name);
      if (value !== undefined && value !== null) {
        headers[name] = Array.isArray(value) ? value.join(', ') : String(value);
      }
    }
    return headers;
  }

  private statusOf(response: unknown): number {
    return (response as { statusCode: number }).statusCode;
  }

  private reject(response: unknown, exception: IdempotencyException): Observable<never> {
    const adapter = this.adapterHost.httpAdapter;
    adapter.setHeader(response, 'Content-Type', PROBLEM_CONTENT_TYPE);
    for (const [name, value] of Object.entries(exception.headers)) {
      adapter.setHeader(response, name, value);
    }
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
        scope: exchange.scope,
        keyHash: exchange.keyHash,
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
    const capturable = !takesOverResponse(context.getClass(), context.getHandler().name);
    if (!capturable && options !== undefined) {
      this.logger.warn(
        `${context.getClass().name}.${context.getHandler().name} writes its response with @Res(): its keys run once but are not replayable (410). Use @Res({ passthrough: true }) to make them replayable.`,
      );
    }
    return {
      kind: options === undefined ? 'auto' : 'decorated',
      settings: resolveRouteSettings(this.settings.route, options ?? {}, options !== undefined),
      capturable,
    };
  }
}

/** Whether a handler sends its response itself (`@Res()`/`@Next()` without passthrough). */
function takesOverResponse(controller: object, method: string): boolean {
  if (Reflect.getMetadata(RESPONSE_PASSTHROUGH_METADATA, controller, method) === true) {
    return false;
  }
  const args = (Reflect.getMetadata(ROUTE_ARGS_METADATA, controller, method) ?? {}) as object;
  return Object.keys(args).some((key) => {
    const type = Number(key.split(':')[0]);
    return type === RouteParamtypes.RESPONSE || type === RouteParamtypes.NEXT;
  });
}

/** Results that cannot be stored as bytes: files, streams and raw binary. */
function isStreamLike(value: unknown): boolean {
  return (
    value instanceof StreamableFile ||
    ArrayBuffer.isView(value) ||
    (typeof value === 'object' &&
      value !== null &&
      typeof (value as { pipe?: unknown }).pipe === 'function')
  );
}

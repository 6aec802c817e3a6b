import {
  type CallHandler,
  type ExecutionContext,
  HttpException,
  Inject,
  Injectable,
  Logger,
  type NestInterceptor,
  Optional,
} from '@nestjs/common';
import { HttpAdapterHost, Reflector } from '@nestjs/core';
import { performance } from 'node:perf_hooks';
import type { Observable } from 'rxjs';
import { throwError } from 'rxjs';
import { Exchange, ReportedRequest } from './execution/exchange';
import { type ExecutionDeps, ExecutionSteps } from './execution/execution-steps';
import { LeaseExecution } from './execution/lease-execution';
import { OutcomeReporter } from './execution/outcome-reporter';
import { TransactionalExecution } from './execution/transactional-execution';
import { ResponseWriter } from './http/response-writer';
import { MessageIdempotency } from './messages/message-idempotency';
import { isMessageHandler } from './messages/message-pattern';
import { MessageReplyWriter } from './messages/message-reply';
import {
  type RouteIdentity,
  type RoutePlan,
  configureRoute,
  coveredByAutoMethods,
  methodKeyOf,
} from './http/route-plan';
import type { ResolvedModuleSettings, ResolvedRouteSettings } from './idempotency-options.defaults';
import {
  HANDLED_REQUEST,
  IDEMPOTENT_METADATA,
  SKIP_IDEMPOTENCY_METADATA,
} from './idempotency.constants';
import {
  type IdempotencyException,
  IdempotencyKeyInvalidException,
  IdempotencyKeyMissingException,
  IdempotencyRequestNotFingerprintableException,
  IdempotencyScopeUnresolvedException,
} from './idempotency.exceptions';
import {
  IDEMPOTENCY_SETTINGS,
  IDEMPOTENCY_TELEMETRY,
  IDEMPOTENCY_TRANSACTIONAL_STORE,
} from './idempotency.module-definition';
import type {
  IdempotencyRequestInfo,
  IdempotencyRouteOptions,
} from './interfaces/idempotency-options.interface';
import type { IdempotencyOutcome } from './interfaces/idempotency-outcome.interface';
import { BodyTooDeepError } from './protocol/canonical-json';
import { ScopeUnresolvedError } from './protocol/default-scope';
import { parseIdempotencyKey } from './protocol/idempotency-key';
import { requestFingerprint, sha256 } from './protocol/request-fingerprint';
import { DurationWindow } from './protocol/retry-after';
import { IdempotencyStore } from './store/idempotency-store';
import { TransactionalIdempotencyStore } from './store/transactional-idempotency-store';
import type { IdempotencyTelemetry } from './telemetry/idempotency-telemetry';
import { IdempotencyStepsContext } from './steps/idempotency-steps.context';
import { IdempotencyTransactionContext } from './transaction/idempotency-transaction.context';

const PASS: RoutePlan = { kind: 'pass' };

/** Scopes longer than this are stored as their hash, so any principal id fits the key column. */
const MAX_SCOPE_LENGTH = 200;
const HASHED_SCOPE_PREFIX = 'sha256:';

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
  private readonly steps: ExecutionSteps;
  private readonly lease: LeaseExecution;
  private readonly transactional: TransactionalExecution;
  private readonly executionDeps: ExecutionDeps;
  private messages: MessageIdempotency | undefined;

  /**
   * The store of transactional routes (the module's `transactionalStore`, else `store` when it
   * runs transactions, else null). Injected as a property, not a constructor argument, so that
   * subclasses keep their own constructors.
   */
  @Optional()
  @Inject(IDEMPOTENCY_TRANSACTIONAL_STORE)
  protected readonly transactionalStore?: TransactionalIdempotencyStore | null;

  /** The module's metrics and spans; null when off or not installed. A property, as above. */
  @Optional()
  @Inject(IDEMPOTENCY_TELEMETRY)
  private readonly telemetry?: IdempotencyTelemetry | null;

  /** Where handlers find their steps (`IdempotencySteps`). A property, as above. */
  @Optional()
  @Inject(IdempotencyStepsContext)
  private readonly stepsContext?: IdempotencyStepsContext;

  constructor(
    @Inject(IDEMPOTENCY_SETTINGS) protected readonly settings: ResolvedModuleSettings,
    protected readonly store: IdempotencyStore,
    protected readonly reflector: Reflector,
    protected readonly adapterHost: HttpAdapterHost,
    protected readonly transactionContext: IdempotencyTransactionContext,
  ) {
    const telemetry = () => this.telemetry ?? null;
    this.executionDeps = {
      settings,
      store,
      writer: new ResponseWriter(adapterHost),
      logger: this.logger,
      reporter: new OutcomeReporter(
        settings.onOutcome,
        { logRawKeys: settings.logRawKeys, logOutcomes: settings.logOutcomes },
        this.logger,
        telemetry,
      ),
      renderStoredError: (error) => this.renderStoredError(error),
      telemetry,
      stepsContext: () => this.stepsContext ?? null,
    };
    this.steps = new ExecutionSteps(this.executionDeps);
    this.lease = new LeaseExecution(this.steps);
    this.transactional = new TransactionalExecution(this.steps, transactionContext, () =>
      this.transactionalStoreInUse(),
    );
  }

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'http') {
      return context.getType() === 'rpc' ? this.interceptMessage(context, next) : next.handle();
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
    const url = String(adapter.getRequestUrl(request));
    const reported = new ReportedRequest(request, plan.route, method, url, performance.now());
    if (parsed.kind === 'missing') {
      return this.reject(
        reported,
        response,
        'key-missing',
        new IdempotencyKeyMissingException(this.settings.headerDisplayName),
      );
    }
    if (parsed.kind === 'invalid') {
      return this.reject(
        reported,
        response,
        'key-invalid',
        new IdempotencyKeyInvalidException(parsed.reason),
      );
    }

    const info: IdempotencyRequestInfo = { method, url, body: request.body, raw: request };
    let fingerprint: string | null;
    let scope: string;
    try {
      fingerprint = this.computeFingerprint(info, plan.settings);
      scope = this.resolveScope(info, plan.settings);
    } catch (error) {
      if (error instanceof BodyTooDeepError) {
        return this.reject(
          reported.withKey(parsed.key),
          response,
          'not-fingerprintable',
          new IdempotencyRequestNotFingerprintableException(error.message),
        );
      }
      if (error instanceof ScopeUnresolvedError) {
        if (!plan.route.scopeRefusalLogged) {
          plan.route.scopeRefusalLogged = true;
          this.logger.error(
            `${plan.route.name}: ${error.message} Its requests with a key are refused (500) until then; this is logged once per route.`,
          );
        }
        return this.reject(
          reported.withKey(parsed.key),
          response,
          'scope-unresolved',
          new IdempotencyScopeUnresolvedException(),
        );
      }
      throw error;
    }
    const exchange = new Exchange(reported, response, plan.settings, plan.capturable, {
      scope,
      key: parsed.key,
      fingerprint,
      lockTimeoutMs: plan.settings.lockTimeoutMs,
      ttlMs: plan.settings.ttlMs,
    });
    return plan.settings.transactional
      ? this.transactional.run(exchange, next)
      : this.lease.run(exchange, next);
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
    return storedScope(settings.scope(info));
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

  /** Sends a refusal as problem+json (nothing was claimed, nothing runs) and reports it. */
  private reject(
    reported: ReportedRequest,
    response: unknown,
    outcome: IdempotencyOutcome,
    exception: IdempotencyException,
  ): Observable<never> {
    this.steps.report(reported, outcome, { status: exception.getStatus() });
    const problem = this.steps.problem(response, exception);
    return throwError(() => problem);
  }

  /**
   * A message handler's delivery (`@EventPattern()`, `@MessagePattern()`): handled when the
   * handler has `@Idempotent()` (`autoMethods` names HTTP methods only).
   */
  private interceptMessage(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const plan = this.planFor(context);
    if (plan.kind !== 'decorated') {
      return next.handle();
    }
    this.messages ??= this.messageIdempotency();
    return this.messages.handle(context, next, plan.settings, plan.route);
  }

  /** The message path, made on the first message: an HTTP-only application never needs it. */
  private messageIdempotency(): MessageIdempotency {
    const steps = new ExecutionSteps({ ...this.executionDeps, writer: new MessageReplyWriter() });
    return new MessageIdempotency({
      steps,
      lease: new LeaseExecution(steps),
      transactional: new TransactionalExecution(steps, this.transactionContext, () =>
        this.transactionalStoreInUse(),
      ),
      storedScope,
    });
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
    if (
      options === undefined &&
      !coveredByAutoMethods(context.getHandler(), this.settings.autoMethods)
    ) {
      return PASS;
    }
    const controller = context.getClass().name;
    const handler = methodKeyOf(context.getClass(), context.getHandler());
    const route: RouteIdentity = {
      name: `${controller}.${handler}`,
      controller,
      handler,
      durations: new DurationWindow(),
      scopeRefusalLogged: false,
    };
    // Checked at start-up already (IdempotencyRoutesValidator); resolved here for the plan.
    const { settings, capturable } = configureRoute(
      context.getClass(),
      handler,
      options,
      this.settings.route,
      this.transactionalStoreInUse() !== null,
      isMessageHandler(context.getHandler()),
    );
    return { kind: options === undefined ? 'auto' : 'decorated', settings, capturable, route };
  }

  /**
   * The store transactional routes run on. Read when used: the injected property is set after
   * the constructor ran. Without it (an interceptor built outside Nest's injector), `store` when
   * it runs transactions. The start-up checks read it too.
   */
  private transactionalStoreInUse(): TransactionalIdempotencyStore | null {
    if (this.transactionalStore !== undefined) {
      return this.transactionalStore;
    }
    return this.store instanceof TransactionalIdempotencyStore ? this.store : null;
  }
}

/**
 * A scope as it is stored: one longer than the key column allows is hashed. A raw scope that
 * looks hashed is hashed as well, so that no principal id can name another principal's hashed
 * scope.
 */
function storedScope(scope: string): string {
  return scope.length > MAX_SCOPE_LENGTH || scope.startsWith(HASHED_SCOPE_PREFIX)
    ? `${HASHED_SCOPE_PREFIX}${sha256(scope)}`
    : scope;
}

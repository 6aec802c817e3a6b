import { type CallHandler, type ExecutionContext, HttpException, Logger } from '@nestjs/common';
import { performance } from 'node:perf_hooks';
import { type Observable, defer, lastValueFrom, throwError } from 'rxjs';
import { Exchange, ReportedRequest } from '../execution/exchange';
import type { ExecutionSteps } from '../execution/execution-steps';
import type { LeaseExecution } from '../execution/lease-execution';
import type { TransactionalExecution } from '../execution/transactional-execution';
import type { RouteIdentity } from '../http/route-plan';
import type { ResolvedRouteSettings } from '../idempotency-options.defaults';
import {
  IdempotencyException,
  IdempotencyKeyInFlightException,
  IdempotencyKeyInvalidException,
  IdempotencyKeyMissingException,
  IdempotencyRequestNotFingerprintableException,
  IdempotencyResponseNotReplayableException,
  IdempotencyStoreUnavailableException,
} from '../idempotency.exceptions';
import type { IdempotencyRequestInfo } from '../interfaces/idempotency-options.interface';
import { BodyTooDeepError } from '../protocol/canonical-json';
import { defaultScope } from '../protocol/default-scope';
import { parseIdempotencyKey } from '../protocol/idempotency-key';
import { requestFingerprint } from '../protocol/request-fingerprint';
import { type IdempotentMessageContext, deliveryOf } from './message-delivery';
import { type MessageHandlerKind, messageHandlerKind, messagePatternText } from './message-pattern';
import { MessageReply } from './message-reply';
import { isRpcException, rpcError } from './rpc-error';

/** Marks a delivery's context once an interceptor took it, as `HANDLED_REQUEST` marks a request. */
const HANDLED_MESSAGE = Symbol('nestjs-idempotency:handled-message');

/** What the message path needs from the interceptor: its steps and executions on message replies. */
export interface MessageExecutions {
  steps: ExecutionSteps;
  lease: LeaseExecution;
  transactional: TransactionalExecution;
  /** The scope as the interceptor stores it (long ones hashed). */
  storedScope(scope: string): string;
}

/** What is done with a delivery once its outcome is known. */
type Disposition = 'ack' | 'retry' | 'deadLetter';

/**
 * `@Idempotent()` on a message handler (`@EventPattern()`, `@MessagePattern()`): the message's id
 * is the key, the pattern and handler its scope, its payload its fingerprint. The handler runs
 * once per key, in lease or transactional mode as an HTTP route would, and the delivery is settled
 * only once its outcome is recorded (in transactional mode, committed): a consumer that dies before
 * then leaves the message to be delivered again, and that delivery finds the record.
 *
 * - done, or a duplicate of a done message: acked (a request-reply duplicate gets the stored reply);
 * - a duplicate while the first still runs: waits for it (`concurrency: 'wait'` is the default
 *   here), then as above; still running after `waitTimeoutMs`: delivered again later;
 * - a handler error that is not a client error, or the store unavailable: nothing is recorded, the
 *   message is delivered again (retry);
 * - a client error (4xx `HttpException`, an `RpcException`, a pipe's refusal), a key reused with
 *   another payload, a missing or malformed key: to the dead-letter path; a stored client error is
 *   dead-lettered again for every duplicate.
 */
export class MessageIdempotency {
  private readonly logger = new Logger('Idempotency');

  constructor(private readonly executions: MessageExecutions) {}

  handle(
    context: ExecutionContext,
    next: CallHandler,
    settings: ResolvedRouteSettings,
    route: RouteIdentity,
  ): Observable<unknown> {
    const rpc = context.switchToRpc();
    const transportContext = rpc.getContext<unknown>();
    const holder: Record<PropertyKey, unknown> = isObject(transportContext) ? transportContext : {};
    const state = holder[HANDLED_MESSAGE];
    if (state === 'running') {
      // A second interceptor of this module on the same handler (a global and a route one):
      // the first one handles the delivery.
      return next.handle();
    }
    if (state === 'settled') {
      // Subscribed again after the delivery was settled (an outer retry): the broker decides
      // whether it comes again, and the record answers it then.
      return throwError(
        () =>
          new Error('nestjs-idempotency: this delivery was settled already; it is not run again.'),
      );
    }
    holder[HANDLED_MESSAGE] = 'running';
    const handler = context.getHandler();
    const message: DeliveredMessage = {
      data: rpc.getData<unknown>(),
      context: transportContext,
      holder,
      delivery: deliveryOf(transportContext),
      kind: messageHandlerKind(handler),
      pattern: messagePatternText(handler),
      settings,
      route,
    };
    return defer(async () => {
      try {
        return await this.process(message, next);
      } finally {
        holder[HANDLED_MESSAGE] = 'settled';
      }
    });
  }

  private async process(message: DeliveredMessage, next: CallHandler): Promise<unknown> {
    try {
      return await this.claimAndRun(message, next);
    } catch (error) {
      if (error instanceof Settled) {
        throw error.cause;
      }
      // Failed before anything was claimed or run (a messageKey, scope or fingerprint function
      // that threw): as it is, the message never will succeed here.
      this.dispose(message, 'deadLetter', error);
      throw error;
    }
  }

  private async claimAndRun(message: DeliveredMessage, next: CallHandler): Promise<unknown> {
    const { settings, delivery } = message;
    const reported = new ReportedRequest(
      message.holder,
      message.route,
      message.kind,
      message.pattern,
      now(),
    );
    const raw = settings.messageKey
      ? settings.messageKey(message.data, message.context)
      : delivery.idempotencyKey();
    const parsed =
      raw === undefined || raw === null
        ? parseIdempotencyKey([])
        : typeof raw === 'string'
          ? parseIdempotencyKey([raw])
          : ({
              kind: 'invalid',
              reason: `The message key is a ${typeof raw}, not a string.`,
            } as const);
    if (parsed.kind === 'missing' && !settings.required) {
      // Unprotected, as an HTTP request without a key: run, and settle by its outcome.
      return this.settle(message, lastValueFrom(next.handle(), { defaultValue: undefined }), null);
    }
    if (parsed.kind !== 'valid') {
      const refusal =
        parsed.kind === 'missing'
          ? new IdempotencyKeyMissingException(
              'message id',
              `This handler requires an idempotency key: the message's id, or what its messageKey option reads.`,
            )
          : new IdempotencyKeyInvalidException(parsed.reason);
      this.executions.steps.report(
        reported,
        parsed.kind === 'missing' ? 'key-missing' : 'key-invalid',
        {
          status: refusal.getStatus(),
        },
      );
      return this.settle(message, Promise.reject(refusal), null);
    }
    reported.withKey(parsed.key);
    const info: IdempotencyRequestInfo = {
      method: message.kind,
      url: message.pattern,
      body: message.data,
      raw: message.context,
    };
    let fingerprint: string | null;
    let scope: string;
    try {
      fingerprint = requestFingerprint(info, settings.fingerprint, settings.excludedFields);
      // The pattern and handler always lead, so that no two handlers share a key, whatever a
      // scope function answers.
      const own = `${message.pattern} ${message.route.name}`;
      scope = this.executions.storedScope(
        settings.scope === defaultScope ? own : `${own} ${settings.scope(info)}`,
      );
    } catch (error) {
      // The message path never calls the default scope, so the only refusal here is the body's;
      // anything else (a scope or fingerprint function that threw) is dead-lettered by process().
      if (!(error instanceof BodyTooDeepError)) {
        throw error;
      }
      const refusal = new IdempotencyRequestNotFingerprintableException(error.message);
      this.executions.steps.report(reported, 'not-fingerprintable', {
        status: refusal.getStatus(),
      });
      return this.settle(message, Promise.reject(refusal), null);
    }
    const reply = new MessageReply();
    const exchange = new Exchange(reported, reply, settings, true, {
      scope,
      key: parsed.key,
      fingerprint,
      lockTimeoutMs: settings.lockTimeoutMs,
      ttlMs: settings.ttlMs,
    });
    const run = settings.transactional
      ? this.executions.transactional.run(exchange, next)
      : this.executions.lease.run(exchange, next);
    return this.settle(message, lastValueFrom(run, { defaultValue: undefined }), reply, exchange);
  }

  /**
   * Settles the delivery once `outcome` (the execution, recording included) has ended, and turns
   * it into the handler's answer: the reply's value, or an error for Nest's RPC exception filter.
   * `reply` is null where nothing was recorded and the value is the handler's own.
   */
  private async settle(
    message: DeliveredMessage,
    outcome: Promise<unknown>,
    reply: MessageReply | null,
    exchange?: Exchange,
  ): Promise<unknown> {
    try {
      return await this.answer(message, outcome, reply, exchange);
    } catch (error) {
      throw new Settled(error);
    }
  }

  private async answer(
    message: DeliveredMessage,
    outcome: Promise<unknown>,
    reply: MessageReply | null,
    exchange?: Exchange,
  ): Promise<unknown> {
    let value: unknown;
    try {
      value = await outcome;
    } catch (error) {
      const disposition = await dispositionOf(error, message.settings);
      this.dispose(message, disposition, error, exchange);
      if (error instanceof IdempotencyException && message.kind === 'EVENT') {
        // Reported and logged here; nobody reads an event handler's error but Nest's logger.
        return undefined;
      }
      throw error instanceof IdempotencyException
        ? await rpcError(error.getResponse() as object)
        : error;
    }
    if (reply === null) {
      this.dispose(message, 'ack');
      return value;
    }
    const answer = typeof value === 'string' ? (JSON.parse(value) as unknown) : value;
    if (reply.status >= 400) {
      // A stored client error: the message cannot succeed as it is, now or on any redelivery.
      this.dispose(message, 'deadLetter', undefined, exchange, reply.status, answer);
      if (message.kind === 'EVENT') {
        return undefined;
      }
      throw await rpcError(isObject(answer) ? answer : { status: reply.status, message: answer });
    }
    this.dispose(message, 'ack');
    return answer;
  }

  private dispose(
    message: DeliveredMessage,
    wanted: Disposition,
    error?: unknown,
    exchange?: Exchange,
    status?: number,
    answer?: unknown,
  ): void {
    // A request-reply caller is sent the error and retries with the same id when it wants to;
    // a redelivery would run for nobody, its reply to a caller that already had its answer.
    const disposition = wanted === 'retry' && message.kind === 'MESSAGE' ? 'ack' : wanted;
    try {
      message.delivery[disposition]();
    } catch (failure) {
      this.logger.error(
        `${message.kind} ${message.pattern}: settling the delivery (${disposition}) failed: ${String(failure)}`,
      );
    }
    if (disposition === 'deadLetter') {
      const key = exchange ? ` key #${exchange.keyHash}` : '';
      // A stored error's own message (a ValidationPipe's list) says why better than its status.
      const said = isObject(answer) ? answer.message : undefined;
      const why =
        error instanceof Error
          ? error.message
          : `its stored answer is an error (${status})${said === undefined ? '' : `: ${JSON.stringify(said)}`}`;
      this.logger.warn(`${message.kind} ${message.pattern}${key}: dead-lettered. ${why}`);
    }
  }
}

/** An error from after the delivery was settled, on its way to Nest unchanged. */
class Settled {
  constructor(readonly cause: unknown) {}
}

/** One delivered message, as the interceptor found it. */
interface DeliveredMessage {
  data: unknown;
  context: unknown;
  /**
   * Where the delivery's state is kept: its transport context (a fresh object when it has none).
   * The execution keeps the transaction there too, for `@IdempotentEntityManager()`.
   */
  holder: Record<PropertyKey, unknown>;
  delivery: IdempotentMessageContext;
  kind: MessageHandlerKind;
  pattern: string;
  settings: ResolvedRouteSettings;
  route: RouteIdentity;
}

/**
 * Whether a failed delivery may succeed later (retry), is done already (ack), or never will be
 * (dead letter). Only this interceptor still sees the error's class: Nest's RPC filter turns
 * anything but an `RpcException` into "Internal server error".
 */
async function dispositionOf(
  error: unknown,
  settings: ResolvedRouteSettings,
): Promise<Disposition> {
  if (
    error instanceof IdempotencyKeyInFlightException ||
    error instanceof IdempotencyStoreUnavailableException
  ) {
    return 'retry';
  }
  if (error instanceof IdempotencyResponseNotReplayableException) {
    // The handler ran for this key before; only its answer was not kept.
    return 'ack';
  }
  if (error instanceof IdempotencyException) {
    return 'deadLetter';
  }
  if (error instanceof HttpException) {
    const status = error.getStatus();
    // A client error the route would store is final; 409 and 429 (not stored by default) pass.
    return status < 500 && settings.storeStatus(status) ? 'deadLetter' : 'retry';
  }
  return (await isRpcException(error)) ? 'deadLetter' : 'retry';
}

function isObject(value: unknown): value is Record<PropertyKey, unknown> {
  return typeof value === 'object' && value !== null;
}

const now = () => performance.now();

import { StreamableFile } from '@nestjs/common';
import {
  METHOD_METADATA,
  RESPONSE_PASSTHROUGH_METADATA,
  ROUTE_ARGS_METADATA,
} from '@nestjs/common/constants';
import { RequestMethod } from '@nestjs/common/enums/request-method.enum';
import { RouteParamtypes } from '@nestjs/common/enums/route-paramtypes.enum';
import { type ResolvedRouteSettings, resolveRouteSettings } from '../idempotency-options.defaults';
import type { IdempotencyRouteOptions } from '../interfaces/idempotency-options.interface';
import type { DurationWindow } from '../protocol/retry-after';

/** What the interceptor does on a route, decided once per handler. */
export type RoutePlan =
  | { kind: 'pass' }
  | {
      kind: 'decorated' | 'auto';
      settings: ResolvedRouteSettings;
      /** `false` when the handler writes the response itself (`@Res()` without passthrough). */
      capturable: boolean;
      route: RouteIdentity;
    };

/** A route the interceptor handles, and what it learns about it while the process runs. */
export interface RouteIdentity {
  /** `Controller.method`, for logs. */
  name: string;
  controller: string;
  handler: string;
  /** Recent execution times, for the `Retry-After` of duplicates. */
  durations: DurationWindow;
  /** Set once a request refused for want of a scope has been logged. */
  scopeRefusalLogged: boolean;
}

/** One route's settings, and whether the module can capture its responses. */
export interface RouteConfiguration {
  settings: ResolvedRouteSettings;
  capturable: boolean;
}

/**
 * Resolves a route's configuration, or throws the error that must stop the application: options
 * that do not resolve, a transactional route on a store without transactions, or a transactional
 * route that writes its own response (it would answer before the commit that makes it true).
 */
export function configureRoute(
  controller: object,
  method: string,
  options: IdempotencyRouteOptions | undefined,
  moduleRoute: IdempotencyRouteOptions,
  storeRunsTransactions: boolean,
  messageHandler = false,
): RouteConfiguration {
  const name = `${(controller as { name?: string }).name}.${method}`;
  // A duplicate message waits for the first by default: refusing it would have the broker
  // deliver it again at once, over and over, while the first runs. The module's scope is an HTTP
  // one (the principal of a request); a message handler's scope is its own option only.
  const routeOptions = messageHandler ? { concurrency: 'wait' as const, ...options } : options;
  const settings = resolveRouteSettings(
    messageHandler ? { ...moduleRoute, scope: undefined } : moduleRoute,
    routeOptions ?? {},
    options !== undefined,
    `@Idempotent() of ${name}`,
  );
  const capturable = !takesOverResponse(controller, method);
  if (settings.transactional && !storeRunsTransactions) {
    throw new Error(
      `nestjs-idempotency: ${name} is transactional, but the store in use cannot run transactions.`,
    );
  }
  if (settings.transactional && !capturable) {
    throw new Error(
      `nestjs-idempotency: ${name} writes its response with @Res() and cannot be transactional. Use @Res({ passthrough: true }).`,
    );
  }
  return { settings, capturable };
}

/**
 * The property key under which `controller` holds `handler`: Nest keys a route's parameter
 * metadata by it, and a decorator that wraps a method may leave the wrapper another `name`.
 */
export function methodKeyOf(controller: { prototype?: object }, handler: unknown): string {
  for (let proto = controller.prototype; proto && proto !== Object.prototype;) {
    for (const key of Object.getOwnPropertyNames(proto)) {
      if (Object.getOwnPropertyDescriptor(proto, key)?.value === handler) {
        return key;
      }
    }
    proto = Object.getPrototypeOf(proto) as object | undefined;
  }
  return (handler as { name?: string }).name ?? '';
}

/** Whether a route without `@Idempotent()` is one `autoMethods` covers, by its HTTP method. */
export function coveredByAutoMethods(handler: object, autoMethods: ReadonlySet<string>): boolean {
  const method = Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod | undefined;
  if (autoMethods.size === 0 || method === undefined) {
    return false;
  }
  return method === RequestMethod.ALL || autoMethods.has(RequestMethod[method]);
}

/** Whether a handler sends its response itself (`@Res()`/`@Next()` without passthrough). */
export function takesOverResponse(controller: object, method: string): boolean {
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
export function isStreamLike(value: unknown): boolean {
  return (
    value instanceof StreamableFile ||
    ArrayBuffer.isView(value) ||
    (typeof value === 'object' &&
      value !== null &&
      typeof (value as { pipe?: unknown }).pipe === 'function')
  );
}

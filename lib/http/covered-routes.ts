import type { Type } from '@nestjs/common';
import { PATH_METADATA } from '@nestjs/common/constants';
import type { MetadataScanner } from '@nestjs/core';
import { IDEMPOTENT_METADATA, SKIP_IDEMPOTENCY_METADATA } from '../idempotency.constants';
import type { IdempotencyRouteOptions } from '../interfaces/idempotency-options.interface';
import { isMessageHandler } from '../messages/message-pattern';
import { coveredByAutoMethods } from './route-plan';

/** A route (or message handler) of a controller that an idempotency interceptor handles. */
export interface CoveredRoute {
  /** The method's name on the controller's prototype. */
  method: string;
  handler: (...args: unknown[]) => unknown;
  /** Its `@Idempotent()` options (the method's, else its controller's); undefined for an `autoMethods` route. */
  options: IdempotencyRouteOptions | undefined;
}

/**
 * The routes of `controller` that an interceptor handles: those with `@Idempotent()` (on the
 * method or the controller), and with `autoMethods` those of the listed methods, less the
 * `@SkipIdempotency()` ones. Metadata is read as the interceptor reads it: the method's first,
 * then its controller's.
 */
export function coveredRoutes(
  controller: Type,
  scanner: MetadataScanner,
  autoMethods: ReadonlySet<string>,
): CoveredRoute[] {
  const prototype = controller.prototype as Record<string, unknown>;
  const routes: CoveredRoute[] = [];
  for (const method of scanner.getAllMethodNames(prototype)) {
    const handler = prototype[method];
    if (
      typeof handler !== 'function' ||
      (!Reflect.hasMetadata(PATH_METADATA, handler) && !isMessageHandler(handler))
    ) {
      continue;
    }
    const skipped = metadata<boolean>(SKIP_IDEMPOTENCY_METADATA, handler, controller);
    const options = metadata<IdempotencyRouteOptions>(IDEMPOTENT_METADATA, handler, controller);
    if (skipped || (options === undefined && !coveredByAutoMethods(handler, autoMethods))) {
      continue;
    }
    routes.push({ method, handler: handler as CoveredRoute['handler'], options });
  }
  return routes;
}

function metadata<T>(key: string, handler: object, controller: object): T | undefined {
  return (Reflect.getMetadata(key, handler) ?? Reflect.getMetadata(key, controller)) as
    T | undefined;
}

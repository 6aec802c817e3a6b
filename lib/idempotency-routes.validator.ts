import { Inject, Injectable, Logger, type OnModuleInit, type Type } from '@nestjs/common';
import { PATH_METADATA } from '@nestjs/common/constants';
import { DiscoveryService, MetadataScanner } from '@nestjs/core';
import { configureRoute, coveredByAutoMethods } from './http/route-plan';
import type { ResolvedModuleSettings } from './idempotency-options.defaults';
import { IDEMPOTENT_METADATA, SKIP_IDEMPOTENCY_METADATA } from './idempotency.constants';
import { IDEMPOTENCY_SETTINGS } from './idempotency.module-definition';
import type { IdempotencyRouteOptions } from './interfaces/idempotency-options.interface';
import { IdempotencyStore } from './store/idempotency-store';
import { TransactionalIdempotencyStore } from './store/transactional-idempotency-store';

/**
 * Checks every route the interceptor may handle as the application starts, so that a route that
 * cannot work (an unknown or invalid option, a transactional route on a store without
 * transactions or with `@Res()`) stops the start instead of failing its first request, and a
 * route whose responses cannot be replayed is named once.
 */
@Injectable()
export class IdempotencyRoutesValidator implements OnModuleInit {
  private readonly logger = new Logger('Idempotency');

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    @Inject(IDEMPOTENCY_SETTINGS) private readonly settings: ResolvedModuleSettings,
    private readonly store: IdempotencyStore,
  ) {}

  onModuleInit(): void {
    const transactions = this.store instanceof TransactionalIdempotencyStore;
    for (const wrapper of this.discovery.getControllers()) {
      const controller = wrapper.metatype as Type | null;
      if (!controller?.prototype) {
        continue;
      }
      const prototype = controller.prototype as Record<string, unknown>;
      for (const method of this.scanner.getAllMethodNames(prototype)) {
        const handler = prototype[method];
        if (typeof handler !== 'function' || !Reflect.hasMetadata(PATH_METADATA, handler)) {
          continue;
        }
        // As the interceptor reads them: the method's metadata first, then its controller's.
        const skipped = metadata<boolean>(SKIP_IDEMPOTENCY_METADATA, handler, controller);
        const options = metadata<IdempotencyRouteOptions>(IDEMPOTENT_METADATA, handler, controller);
        const covered =
          options !== undefined || coveredByAutoMethods(handler, this.settings.autoMethods);
        if (skipped || !covered) {
          continue;
        }
        const { capturable } = configureRoute(
          controller,
          method,
          options,
          this.settings.route,
          transactions,
        );
        if (!capturable && options !== undefined) {
          this.logger.warn(
            `${controller.name}.${method} writes its response with @Res(): its keys run once but are not replayable (410). Use @Res({ passthrough: true }) to make them replayable.`,
          );
        }
      }
    }
  }
}

function metadata<T>(key: string, handler: object, controller: object): T | undefined {
  return (Reflect.getMetadata(key, handler) ?? Reflect.getMetadata(key, controller)) as
    T | undefined;
}

import { Inject, Injectable } from '@nestjs/common';
import { PATH_METADATA } from '@nestjs/common/constants';
import { DiscoveryService, MetadataScanner } from '@nestjs/core';
import { trackEntry } from './execution/handler-entry';
import type { ResolvedModuleSettings } from './idempotency-options.defaults';
import { IDEMPOTENT_METADATA, SKIP_IDEMPOTENCY_METADATA } from './idempotency.constants';
import { IDEMPOTENCY_SETTINGS } from './idempotency.module-definition';

/**
 * Finds, as the application is created, the routes the interceptor may handle, and wraps their
 * methods so that a request refused before its method runs (by a pipe) can be told from one whose
 * handler failed. It works in its constructor: Nest registers routes after creating providers and
 * before any `onModuleInit`, reading each route method as it is then.
 */
@Injectable()
export class IdempotencyRoutesExplorer {
  constructor(
    discovery: DiscoveryService,
    scanner: MetadataScanner,
    @Inject(IDEMPOTENCY_SETTINGS) settings: ResolvedModuleSettings,
  ) {
    const everyRoute = settings.autoMethods.size > 0;
    for (const wrapper of discovery.getControllers()) {
      const controller = wrapper.metatype as (abstract new () => unknown) | null;
      if (!controller?.prototype || Reflect.getMetadata(SKIP_IDEMPOTENCY_METADATA, controller)) {
        continue;
      }
      const decoratedClass = Reflect.hasMetadata(IDEMPOTENT_METADATA, controller);
      const prototype = controller.prototype as Record<string, unknown>;
      for (const name of scanner.getAllMethodNames(prototype)) {
        const method = prototype[name];
        if (
          typeof method === 'function' &&
          Reflect.hasMetadata(PATH_METADATA, method) &&
          !Reflect.getMetadata(SKIP_IDEMPOTENCY_METADATA, method) &&
          (everyRoute || decoratedClass || Reflect.hasMetadata(IDEMPOTENT_METADATA, method))
        ) {
          trackEntry(prototype, name);
        }
      }
    }
  }
}

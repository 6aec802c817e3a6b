import { Inject, Injectable, Logger, type OnModuleInit, type Type } from '@nestjs/common';
import { PATH_METADATA } from '@nestjs/common/constants';
import { DiscoveryService, MetadataScanner, ModulesContainer } from '@nestjs/core';
import { configureRoute, coveredByAutoMethods } from './http/route-plan';
import type { ResolvedModuleSettings } from './idempotency-options.defaults';
import { IDEMPOTENT_METADATA, SKIP_IDEMPOTENCY_METADATA } from './idempotency.constants';
import {
  IDEMPOTENCY_SERVES_EVERY_ROUTE,
  IDEMPOTENCY_SETTINGS,
  IDEMPOTENCY_TRANSACTIONAL_STORE,
} from './idempotency.module-definition';
import { type ModuleNode, providerModule } from './registration-scope';
import type { IdempotencyRouteOptions } from './interfaces/idempotency-options.interface';
import type { IdempotencyStore } from './store/idempotency-store';
import { TransactionalIdempotencyStore } from './store/transactional-idempotency-store';

/**
 * Checks every route this registration's interceptor may handle as the application starts, so
 * that a route that cannot work (an unknown or invalid option, a transactional route on a store
 * without transactions or with `@Res()`) stops the start instead of failing its first request, and
 * a route whose responses cannot be replayed is named once. With several registrations (each
 * `isGlobal: false`, in its own feature module), each checks the controllers whose module it
 * serves: a route is held against the store it will use.
 */
@Injectable()
export class IdempotencyRoutesValidator implements OnModuleInit {
  private readonly logger = new Logger('Idempotency');

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    @Inject(IDEMPOTENCY_SETTINGS) private readonly settings: ResolvedModuleSettings,
    @Inject(IDEMPOTENCY_TRANSACTIONAL_STORE)
    private readonly transactionalStore: IdempotencyStore | null,
    private readonly modules: ModulesContainer,
    @Inject(IDEMPOTENCY_SERVES_EVERY_ROUTE) private readonly servesEveryRoute: boolean,
  ) {}

  onModuleInit(): void {
    if (
      this.transactionalStore !== null &&
      !(this.transactionalStore instanceof TransactionalIdempotencyStore)
    ) {
      throw new Error(
        `nestjs-idempotency: transactionalStore must be a store that runs transactions (a TransactionalIdempotencyStore, such as postgresStore()); ${this.transactionalStore.constructor.name} is not.`,
      );
    }
    const transactions = this.transactionalStore !== null;
    const own = this.ownModule();
    for (const wrapper of this.discovery.getControllers()) {
      const controller = wrapper.metatype as Type | null;
      if (!controller?.prototype || !this.serves(wrapper.host as ModuleNode | undefined, own)) {
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

  /**
   * Whether this registration's interceptor handles the controllers of `host`: always when it is
   * the global interceptor, else when `host` gets its settings from this registration. When the
   * module graph cannot be read, every controller is checked, as for a single registration.
   */
  private serves(host: ModuleNode | undefined, own: ModuleNode | undefined): boolean {
    if (this.servesEveryRoute || !host || !own) {
      return true;
    }
    return providerModule(host, IDEMPOTENCY_SETTINGS) === own;
  }

  /** The registration (a module of the container) this validator belongs to. */
  private ownModule(): ModuleNode | undefined {
    for (const module of this.modules.values()) {
      const wrapper = module.providers.get(IdempotencyRoutesValidator);
      if (wrapper?.instance === this) {
        return module as unknown as ModuleNode;
      }
    }
    return undefined;
  }
}

function metadata<T>(key: string, handler: object, controller: object): T | undefined {
  return (Reflect.getMetadata(key, handler) ?? Reflect.getMetadata(key, controller)) as
    T | undefined;
}

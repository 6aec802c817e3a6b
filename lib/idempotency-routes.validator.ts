import { Inject, Injectable, Logger, type OnModuleInit, type Type } from '@nestjs/common';
import { APP_INTERCEPTOR, DiscoveryService, MetadataScanner, ModulesContainer } from '@nestjs/core';
import type { InstanceWrapper } from '@nestjs/core/injector/instance-wrapper';
import { isMessageHandler, messagePatternText } from './messages/message-pattern';
import { coveredRoutes } from './http/covered-routes';
import { configureRoute } from './http/route-plan';
import type { ResolvedModuleSettings } from './idempotency-options.defaults';
import { IdempotencyInterceptor } from './idempotency.interceptor';
import {
  IDEMPOTENCY_SETTINGS,
  IDEMPOTENCY_TRANSACTIONAL_STORE,
} from './idempotency.module-definition';
import type { IdempotencyStore } from './store/idempotency-store';
import { TransactionalIdempotencyStore } from './store/transactional-idempotency-store';

/**
 * Checks every route an interceptor of this registration handles as the application starts, so
 * that a route that cannot work (an unknown or invalid option, a transactional route on a store
 * without transactions or with `@Res()`) stops the start instead of failing its first request, and
 * a route whose responses cannot be replayed is named once. It goes by the interceptors Nest
 * built: the global ones (`APP_INTERCEPTOR`, `useGlobalInterceptor`) and those of each
 * controller (`@Idempotent()`), subclasses included, each held against the store it uses. With
 * several registrations (each `isGlobal: false`, in its own feature module), each checks the
 * routes of its own interceptors.
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
    const global = this.globalInterceptors();
    const messagePatterns = new Map<string, string>();
    for (const wrapper of this.discovery.getControllers()) {
      const controller = wrapper.metatype as Type | null;
      const interceptors = [...global, ...this.controllerInterceptors(wrapper)];
      if (!controller?.prototype || interceptors.length === 0) {
        continue;
      }
      // A route must work with every interceptor of this registration that may handle it.
      const transactions = interceptors.every(
        (interceptor) => interceptor['transactionalStoreInUse']() !== null,
      );
      this.checkRoutes(controller, transactions, messagePatterns);
    }
  }

  private checkRoutes(
    controller: Type,
    transactions: boolean,
    messagePatterns: Map<string, string>,
  ): void {
    for (const { method, handler, options } of coveredRoutes(
      controller,
      this.scanner,
      this.settings.autoMethods,
    )) {
      const { capturable } = configureRoute(
        controller,
        method,
        options,
        this.settings.route,
        transactions,
        isMessageHandler(handler),
      );
      if (isMessageHandler(handler)) {
        this.checkOneHandlerPerPattern(controller, method, handler, messagePatterns);
      }
      if (!capturable && options !== undefined) {
        this.logger.warn(
          `${controller.name}.${method} writes its response with @Res(): its keys run once but are not replayable (410). Use @Res({ passthrough: true }) to make them replayable.`,
        );
      }
    }
  }

  /**
   * Nest hands every handler of an event pattern the same delivery, and each idempotent one would
   * settle it: a second acknowledgement closes a RabbitMQ channel, redelivering all it held.
   */
  private checkOneHandlerPerPattern(
    controller: Type,
    method: string,
    handler: object,
    seen: Map<string, string>,
  ): void {
    const pattern = messagePatternText(handler);
    const name = `${controller.name}.${method}`;
    const other = seen.get(pattern);
    if (other !== undefined && other !== name) {
      throw new Error(
        `nestjs-idempotency: ${other} and ${name} both handle "${pattern}" with @Idempotent(); a delivery can be settled once only. Handle the pattern in one method.`,
      );
    }
    seen.set(pattern, name);
  }

  /** Whether `instance` is an interceptor built with this registration's settings. */
  private isOurs(instance: unknown): instance is IdempotencyInterceptor {
    return instance instanceof IdempotencyInterceptor && instance['settings'] === this.settings;
  }

  /** This registration's interceptors that Nest applies to every route (`APP_INTERCEPTOR`). */
  private globalInterceptors(): IdempotencyInterceptor[] {
    const found = new Set<IdempotencyInterceptor>();
    for (const module of this.modules.values()) {
      for (const [token, wrapper] of module.providers) {
        // Nest files each APP_INTERCEPTOR provider under a token of its own, with this prefix.
        const global = typeof token === 'string' && token.startsWith(`${APP_INTERCEPTOR} (`);
        if (global && this.isOurs(wrapper.instance)) {
          found.add(wrapper.instance);
        }
      }
    }
    return [...found];
  }

  /** This registration's interceptors that a controller's `@UseInterceptors()` applies. */
  private controllerInterceptors(wrapper: InstanceWrapper): IdempotencyInterceptor[] {
    // Nest keeps the enhancers a controller's decorators declared; none gives undefined.
    return (wrapper.getEnhancersMetadata() ?? [])
      .map((enhancer) => enhancer.instance as unknown)
      .filter((instance): instance is IdempotencyInterceptor => this.isOurs(instance));
  }
}

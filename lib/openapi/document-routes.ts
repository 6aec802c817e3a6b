import type { Logger, Type } from '@nestjs/common';
import type { MetadataScanner, ModulesContainer } from '@nestjs/core';
import type { Module } from '@nestjs/core/injector/module';
import { isMessageHandler } from '../messages/message-pattern';
import { coveredRoutes } from '../http/covered-routes';
import {
  type ResolvedModuleSettings,
  type ResolvedRouteSettings,
  resolveRouteSettings,
} from '../idempotency-options.defaults';
import { IdempotencyInterceptor } from '../idempotency.interceptor';
import {
  IDEMPOTENCY_GLOBAL_INTERCEPTOR,
  IDEMPOTENCY_SETTINGS,
} from '../idempotency.module-definition';
import { loadSwagger } from './load-swagger';
import { documentRoute, forgetApp, forgetOtherApps } from './route-documentation';

/** Takes back what a registration documented when its application closes. */
export interface OpenApiDocumentation {
  onApplicationShutdown(): void;
}

/**
 * When `@nestjs/swagger` is installed, adds what the module does to the OpenAPI metadata of the
 * routes this registration serves, as Nest will route them: with a global interceptor
 * (`useGlobalInterceptor`, the first registration that has one) every `@Idempotent()` route and the
 * `autoMethods` routes; otherwise the `@Idempotent()` routes of the controllers whose module
 * resolves the interceptor to this registration. It runs as the application is created, before
 * `SwaggerModule.createDocument()` reads the metadata, and takes its additions back when the
 * application closes.
 */
export async function documentIdempotentRoutes(
  settings: ResolvedModuleSettings,
  modules: ModulesContainer,
  scanner: MetadataScanner,
  logger: Logger,
): Promise<OpenApiDocumentation> {
  const swagger = await loadSwagger(logger);
  const nothing = { onApplicationShutdown: () => undefined };
  if (!swagger) {
    return nothing;
  }
  const all = [...modules.values()];
  // This registration: the one module whose settings are these (resolved, as they are injected).
  const ours = all.find(
    (module) => module.providers.get(IDEMPOTENCY_SETTINGS)?.instance === settings,
  );
  const global = all.find((module) => module.providers.has(IDEMPOTENCY_GLOBAL_INTERCEPTOR));
  if (!ours || (global !== undefined && global !== ours)) {
    return nothing;
  }
  const autoMethods = global === ours ? settings.autoMethods : new Set<string>();
  for (const module of all) {
    const decoratedRoutesAreOurs = global === ours || interceptorModuleOf(module) === ours;
    for (const wrapper of module.controllers.values()) {
      const controller = wrapper.metatype as Type | null;
      if (!controller?.prototype) {
        continue;
      }
      for (const method of scanner.getAllMethodNames(controller.prototype as object)) {
        const handler = (controller.prototype as Record<string, unknown>)[method];
        if (typeof handler === 'function') {
          forgetOtherApps(swagger, handler, modules);
        }
      }
      for (const route of coveredRoutes(controller, scanner, autoMethods)) {
        // A message handler has no HTTP operation to document.
        if (
          (route.options !== undefined && !decoratedRoutesAreOurs) ||
          isMessageHandler(route.handler)
        ) {
          continue;
        }
        let resolved: ResolvedRouteSettings;
        try {
          resolved = resolveRouteSettings(
            settings.route,
            route.options ?? {},
            route.options !== undefined,
          );
        } catch {
          // Invalid options stop the start with their own error (IdempotencyRoutesValidator).
          continue;
        }
        documentRoute(swagger, controller, route, modules, {
          headerName: settings.headerDisplayName,
          required: resolved.required,
          fingerprinted: resolved.fingerprint?.enabled !== false,
        });
      }
    }
  }
  return { onApplicationShutdown: () => forgetApp(swagger, modules) };
}

/**
 * The module whose `IdempotencyInterceptor` the controllers of `module` get, found as Nest's
 * injector finds it: the module's own providers, then its imports in order (global modules come
 * last among them), going through a module's imports only where it re-exports them.
 */
function interceptorModuleOf(module: Module): Module | undefined {
  return module.providers.has(IdempotencyInterceptor)
    ? module
    : lookupInImports(module, new Set(), false);
}

function lookupInImports(
  module: Module,
  visited: Set<string>,
  traversing: boolean,
): Module | undefined {
  for (const related of module.imports) {
    if (
      !related ||
      (traversing && !module.exports.has(related.metatype)) ||
      visited.has(related.id)
    ) {
      continue;
    }
    visited.add(related.id);
    if (
      related.exports.has(IdempotencyInterceptor) &&
      related.providers.has(IdempotencyInterceptor)
    ) {
      return related;
    }
    const found = lookupInImports(related, visited, true);
    if (found) {
      return found;
    }
  }
  return undefined;
}

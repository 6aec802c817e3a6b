import type { Logger, Type } from '@nestjs/common';
import type { MetadataScanner, ModulesContainer } from '@nestjs/core';
import type { Module } from '@nestjs/core/injector/module';
import { coveredRoutes } from '../http/covered-routes';
import {
  type ResolvedModuleSettings,
  type ResolvedRouteSettings,
  resolveRouteSettings,
} from '../idempotency-options.defaults';
import { IDEMPOTENCY_SETTINGS } from '../idempotency.module-definition';
import { loadSwagger } from './load-swagger';
import { documentRoute, forgetOtherApps } from './route-documentation';

/**
 * When `@nestjs/swagger` is installed, adds what the module does to the OpenAPI metadata of the
 * routes this registration serves: the `@Idempotent()` routes of the controllers that get their
 * interceptor from it, and with its global interceptor the `autoMethods` routes. It runs as the
 * application is created, before `SwaggerModule.createDocument()` reads the metadata. Returns
 * whether it documented (false without swagger).
 */
export async function documentIdempotentRoutes(
  settings: ResolvedModuleSettings,
  modules: ModulesContainer,
  scanner: MetadataScanner,
  globalInterceptor: boolean,
  logger: Logger,
): Promise<boolean> {
  const swagger = await loadSwagger(logger);
  if (!swagger) {
    return false;
  }
  const autoMethods = globalInterceptor ? settings.autoMethods : new Set<string>();
  // This registration: the one module whose settings are these (resolved, as they are injected).
  const ours = [...modules.values()].find(
    (module) => module.providers.get(IDEMPOTENCY_SETTINGS)?.instance === settings,
  );
  for (const module of modules.values()) {
    const decoratedRoutesAreOurs = ours !== undefined && registrationOf(module, modules) === ours;
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
        if (route.options !== undefined && !decoratedRoutesAreOurs) {
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
        documentRoute(
          swagger,
          controller,
          route,
          { app: modules, by: settings },
          {
            headerName: settings.headerDisplayName,
            required: resolved.required,
            fingerprinted: resolved.fingerprint?.enabled !== false,
          },
        );
      }
    }
  }
  return true;
}

/** Whether `module` is a registration of IdempotencyModule. */
const isRegistration = (module: Module | undefined): module is Module =>
  module?.providers.has(IDEMPOTENCY_SETTINGS) === true;

/**
 * The registration whose interceptor `@UseInterceptors()` resolves to in the controllers of
 * `module`, as Nest's injector looks: the module's imports first, then a global registration.
 */
function registrationOf(module: Module, modules: ModulesContainer): Module | undefined {
  for (const imported of module.imports) {
    if (isRegistration(imported)) {
      return imported;
    }
  }
  return [...modules.values()].find((candidate) => candidate.isGlobal && isRegistration(candidate));
}

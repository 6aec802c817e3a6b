import type { Type } from '@nestjs/common';
import type { DiscoveryService, MetadataScanner } from '@nestjs/core';
import { coveredRoutes } from '../http/covered-routes';
import {
  type ResolvedModuleSettings,
  type ResolvedRouteSettings,
  resolveRouteSettings,
} from '../idempotency-options.defaults';
import { loadSwagger } from './load-swagger';
import { documentRoute } from './route-documentation';

/**
 * When `@nestjs/swagger` is installed, adds what the module does to the OpenAPI metadata of every
 * route this registration covers: those with `@Idempotent()`, and with its global interceptor the
 * `autoMethods` routes. It runs as the application is created, before `SwaggerModule` reads the
 * metadata. Returns whether it documented (false without swagger).
 */
export async function documentIdempotentRoutes(
  settings: ResolvedModuleSettings,
  discovery: DiscoveryService,
  scanner: MetadataScanner,
  globalInterceptor: boolean,
): Promise<boolean> {
  const swagger = await loadSwagger();
  if (!swagger) {
    return false;
  }
  const autoMethods = globalInterceptor ? settings.autoMethods : new Set<string>();
  for (const wrapper of discovery.getControllers()) {
    const controller = wrapper.metatype as Type | null;
    if (!controller?.prototype) {
      continue;
    }
    for (const route of coveredRoutes(controller, scanner, autoMethods)) {
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
      documentRoute(swagger, controller, route, {
        headerName: settings.headerDisplayName,
        required: resolved.required,
        fingerprinted: resolved.fingerprint?.enabled !== false,
      });
    }
  }
  return true;
}

import type { InjectionToken } from '@nestjs/common';

/**
 * A module of the application as Nest's container holds it (`Module` of `@nestjs/core`), reduced
 * to what the lookup below reads: all public getters there.
 */
export interface ModuleNode {
  readonly id: string;
  readonly metatype: unknown;
  readonly imports: Set<ModuleNode | undefined>;
  readonly exports: Set<unknown>;
  readonly providers: Map<InjectionToken, unknown>;
}

/**
 * The module whose `token` the providers of `host` receive, found as Nest's injector finds it:
 * `host` itself, else its imports in order, each of them directly or through the modules it
 * re-exports (global modules are among every module's imports, after its own). An interceptor
 * given to `@UseInterceptors()` is built in its controller's module, so this names the module
 * registration whose store and settings it gets. `undefined` when none provides the token.
 */
export function providerModule(host: ModuleNode, token: InjectionToken): ModuleNode | undefined {
  if (host.providers.has(token)) {
    return host;
  }
  return lookupInImports(host, token, new Set(), false);
}

function lookupInImports(
  module: ModuleNode,
  token: InjectionToken,
  visited: Set<string>,
  traversing: boolean,
): ModuleNode | undefined {
  for (const related of module.imports) {
    if (!related || visited.has(related.id)) {
      continue;
    }
    // Past the first level only what a module re-exports is reachable.
    if (traversing && !module.exports.has(related.metatype)) {
      continue;
    }
    visited.add(related.id);
    if (related.exports.has(token) && related.providers.has(token)) {
      return related;
    }
    const found = lookupInImports(related, token, visited, true);
    if (found) {
      return found;
    }
  }
  return undefined;
}

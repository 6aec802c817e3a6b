/**
 * The path template the platform matched the request against (`/payments/:id`, with any global
 * prefix and version): Express keeps it in `request.route.path`, Fastify in
 * `request.routeOptions.url`. `undefined` when neither is there.
 */
export function matchedPathTemplate(request: object): string | undefined {
  const express = (request as { route?: { path?: unknown } }).route?.path;
  if (typeof express === 'string') {
    return express;
  }
  const fastify = (request as { routeOptions?: { url?: unknown } }).routeOptions?.url;
  return typeof fastify === 'string' ? fastify : undefined;
}

import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * Whether one request's route method was entered. Everything between the interceptor and the
 * method (pipes, parameter decorators, inner interceptors) can refuse the request first; such a
 * refusal did nothing, so its key must not be spent on it.
 */
export interface HandlerEntry {
  entered: boolean;
}

const TRACKS_ENTRY = Symbol('nestjs-idempotency:tracks-entry');

/**
 * The entry of the request whose handler runs in this async context. One per process: the
 * wrappers it serves are installed on controller prototypes, which every application in the
 * process shares.
 */
const currentEntry = new AsyncLocalStorage<HandlerEntry>();

/** Runs `fn` (which calls `next.handle()`) so that entering the route method marks `entry`. */
export function runTrackingEntry<T>(entry: HandlerEntry, fn: () => T): T {
  return currentEntry.run(entry, fn);
}

/** Whether `handler` is a route method wrapped by `trackEntry`, whose entries can be trusted. */
export function tracksEntry(handler: unknown): boolean {
  return typeof handler === 'function' && TRACKS_ENTRY in handler;
}

/**
 * Wraps the route method `name` of a controller's prototype so that calling it marks the current
 * request's entry. Nest reads route methods off the prototype when it registers routes, so this
 * must run before that (while providers are created). The wrapper carries the method's name and
 * metadata, so decorators, guards and interceptors see the same route; wrapping twice is a no-op.
 */
export function trackEntry(prototype: object, name: string): void {
  const method = (prototype as Record<string, unknown>)[name];
  if (typeof method !== 'function' || tracksEntry(method)) {
    return;
  }
  const wrapper = function (this: unknown, ...args: unknown[]): unknown {
    const entry = currentEntry.getStore();
    if (entry !== undefined) {
      entry.entered = true;
    }
    return method.apply(this, args);
  };
  for (const key of Reflect.getMetadataKeys(method)) {
    Reflect.defineMetadata(key, Reflect.getMetadata(key, method), wrapper);
  }
  Object.defineProperty(wrapper, 'name', { value: method.name });
  Object.defineProperty(wrapper, TRACKS_ENTRY, { value: true });
  // On the controller's own prototype, so that an inherited method stays untouched for the
  // parent class and its other subclasses.
  Object.defineProperty(prototype, name, {
    value: wrapper,
    writable: true,
    configurable: true,
    enumerable: false,
  });
}

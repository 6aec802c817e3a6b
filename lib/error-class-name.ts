/**
 * The class name of a thrown value (`StoreTimeoutError`, `QueryFailedError`): a bounded set of
 * values, fit for an attribute or a public message. Read from its constructor, not by
 * `instanceof`: a driver's errors may come from another realm. `undefined` for a value that is
 * not an object.
 */
export function errorClassName(error: unknown): string | undefined {
  return (typeof error === 'object' && error !== null && error.constructor?.name) || undefined;
}

/**
 * Set by `@nestjs/core` (12.3 and later) on a request whose pipes or parameter decorators threw,
 * so that its route method never ran. A registered symbol, read without importing Nest's
 * internals; on an older core it is never set.
 */
const REJECTED_BY_PIPES = Symbol.for('nestjs:rejected-by-pipes');

/**
 * Whether Nest refused `request` in its pipes, before the route method was entered. Evidence
 * on the request itself, never inferred from an error's status or shape: a handler that ran
 * cannot be mistaken for one that did not.
 */
export function rejectedByPipes(request: object): boolean {
  return (request as Record<symbol, unknown>)[REJECTED_BY_PIPES] === true;
}

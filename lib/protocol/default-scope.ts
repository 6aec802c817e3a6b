/**
 * Thrown by the default scope when `request.user` exists but names no principal the module can
 * tell apart from another: storing such requests under one shared scope would let one user replay
 * another's response.
 */
export class ScopeUnresolvedError extends Error {
  constructor(readonly reason: string) {
    super(`nestjs-idempotency: ${reason}`);
  }
}

/** Fields of `request.user` read in turn: an app's own id, then the JWT subject (`sub`). */
const PRINCIPAL_FIELDS = ['id', 'sub'] as const;

/**
 * The default scope of a request's keys: `request.user.id`, else `request.user.sub`. Requests
 * without a `request.user` share the anonymous scope `''`. A `request.user` that has neither field
 * (as a string or number) throws `ScopeUnresolvedError` rather than falling into a shared scope.
 */
export function defaultScope(request: { raw: unknown }): string {
  const user = (request.raw as { user?: unknown }).user;
  if (user === undefined || user === null) {
    return '';
  }
  if (typeof user === 'object') {
    for (const field of PRINCIPAL_FIELDS) {
      const id = principalId((user as Record<string, unknown>)[field]);
      if (id !== undefined) {
        return id;
      }
    }
  }
  throw new ScopeUnresolvedError(
    'request.user has neither an id nor a sub (a non-empty string or a number), so the default scope cannot tell this principal from another. Set the scope option to read your user object.',
  );
}

function principalId(value: unknown): string | undefined {
  if (typeof value === 'string') {
    return value === '' ? undefined : value;
  }
  if ((typeof value === 'number' && Number.isFinite(value)) || typeof value === 'bigint') {
    return String(value);
  }
  return undefined;
}

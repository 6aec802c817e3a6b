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

/** Prefix of a scope taken from the JWT subject, so that no `id` and `sub` ever meet. */
const SUBJECT_PREFIX = 'sub:';
/** Prefix of an `id` that itself begins like a prefixed scope, so that every scope stays distinct. */
const ID_PREFIX = 'id:';

/**
 * The default scope of a request's keys: `request.user.id`, else `request.user.sub` (stored as
 * `sub:<sub>`, so that an application with two kinds of users cannot give an `id` of one and a
 * `sub` of the other the same scope). Requests without a user (`undefined`, `null` or `false`, as
 * optional authentication leaves it) share the anonymous scope `''`. A user with neither field (as
 * a non-empty string or a finite number) throws `ScopeUnresolvedError` rather than falling into a
 * shared scope.
 */
export function defaultScope(request: { raw: unknown }): string {
  const user = (request.raw as { user?: unknown }).user;
  if (user === undefined || user === null || user === false) {
    return '';
  }
  if (typeof user === 'object') {
    const { id, sub } = user as { id?: unknown; sub?: unknown };
    const byId = principalId(id);
    if (byId !== undefined) {
      return byId.startsWith(SUBJECT_PREFIX) || byId.startsWith(ID_PREFIX)
        ? `${ID_PREFIX}${byId}`
        : byId;
    }
    const bySubject = principalId(sub);
    if (bySubject !== undefined) {
      return `${SUBJECT_PREFIX}${bySubject}`;
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

/** Metadata key under which `@Idempotent()` stores its route options. */
export const IDEMPOTENT_METADATA = 'nestjs-idempotency:idempotent';

/** Metadata key under which `@SkipIdempotency()` marks a route as opted out. */
export const SKIP_IDEMPOTENCY_METADATA = 'nestjs-idempotency:skip';

/**
 * Set on a request once an interceptor instance has taken charge of it, so that a route-level
 * `@Idempotent()` and a global registration never both claim the same request.
 */
export const HANDLED_REQUEST = Symbol('nestjs-idempotency:handled');

/**
 * Set on a transactional request to its store's transaction object, for parameter decorators
 * (the PostgreSQL store's `@IdempotentEntityManager()`), which cannot inject the context.
 */
export const ACTIVE_TRANSACTION = Symbol('nestjs-idempotency:transaction');

/** Header sent with every replayed response (Stripe's spelling, which clients already check). */
export const REPLAYED_HEADER = 'Idempotent-Replayed';

/** Media type of every error body the module produces (RFC 9457). */
export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** Base of the stable `type` URIs of the problem documents. */
export const PROBLEM_TYPE_BASE = 'urn:nestjs-idempotency:problem:';

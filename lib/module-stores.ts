import type { IdempotencyStore } from './store/idempotency-store';

/**
 * The distinct stores of a registration: `store`, and `transactionalStore` when it is another
 * one. Each is prepared, maintained and purged once.
 */
export function moduleStores(
  store: IdempotencyStore,
  transactionalStore: IdempotencyStore | null | undefined,
): IdempotencyStore[] {
  return transactionalStore && transactionalStore !== store ? [store, transactionalStore] : [store];
}

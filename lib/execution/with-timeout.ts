/** Raised when a store call outlives `storeTimeoutMs`. */
export class StoreTimeoutError extends Error {
  constructor(timeoutMs: number) {
    super(`The idempotency store did not answer within ${timeoutMs} ms.`);
    this.name = 'StoreTimeoutError';
  }
}

/**
 * Settles with `promise`, or rejects with `StoreTimeoutError` after `timeoutMs`, so that a stalled
 * database turns into a quick 503 instead of a hanging request. The store call itself goes on;
 * whatever it does later is fenced by the claim token. `onTimeout` runs when the bound passes first.
 */
export function withTimeout<T>(
  promise: Promise<T>,
  timeoutMs: number,
  onTimeout?: () => void,
): Promise<T> {
  // On every store call of every request: one promise and one timer, no race() or finally().
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new StoreTimeoutError(timeoutMs));
      try {
        onTimeout?.();
      } catch {
        // The caller has its answer; a failing clean-up must not take the process down.
      }
    }, timeoutMs);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/**
 * A claim bounded by `timeoutMs`. A claim that times out may still succeed once the store
 * answers; nobody would then hold it, and the key would stay taken although the client was told
 * to retry. So a late success is undone at once by `undoLate` (the claim's token, or its
 * transaction, makes that safe).
 */
export function boundedClaim<T>(
  claim: Promise<T>,
  timeoutMs: number,
  undoLate: (late: T) => Promise<unknown> | undefined,
): Promise<T> {
  return withTimeout(claim, timeoutMs, () => {
    claim.then(undoLate).catch(() => undefined);
  });
}

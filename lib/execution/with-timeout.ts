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
 * whatever it does later is fenced by the claim token.
 */
export function withTimeout<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
  // On every store call of every request: one promise and one timer, no race() or finally().
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new StoreTimeoutError(timeoutMs)), timeoutMs);
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

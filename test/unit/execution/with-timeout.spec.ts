import { jest } from '@jest/globals';
import { StoreTimeoutError, boundedClaim, withTimeout } from '../../../lib/execution/with-timeout';

/** A promise settled from outside. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

describe('withTimeout', () => {
  it('settles with the call when it answers in time', async () => {
    await expect(withTimeout(Promise.resolve(7), 1000)).resolves.toBe(7);
    await expect(withTimeout(Promise.reject(new Error('down')), 1000)).rejects.toThrow('down');
  });

  it('rejects with StoreTimeoutError once the bound passes, and says so', async () => {
    const onTimeout = jest.fn(() => undefined);
    const call = deferred<number>();
    await expect(withTimeout(call.promise, 5, onTimeout)).rejects.toBeInstanceOf(StoreTimeoutError);
    expect(onTimeout).toHaveBeenCalledTimes(1);
  });

  it('does not call onTimeout for a call that answered or failed first', async () => {
    const onTimeout = jest.fn(() => undefined);
    await withTimeout(Promise.resolve(1), 5, onTimeout);
    await expect(withTimeout(Promise.reject(new Error('down')), 5, onTimeout)).rejects.toThrow(
      'down',
    );
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(onTimeout).not.toHaveBeenCalled();
  });
});

describe('boundedClaim', () => {
  it('undoes a claim that succeeds after the bound passed', async () => {
    const claim = deferred<string>();
    const undoLate = jest.fn((_late: string) => Promise.resolve());
    await expect(boundedClaim(claim.promise, 5, undoLate)).rejects.toBeInstanceOf(
      StoreTimeoutError,
    );
    expect(undoLate).not.toHaveBeenCalled();
    claim.resolve('late claim');
    await flush();
    expect(undoLate).toHaveBeenCalledWith('late claim');
  });

  it('leaves a claim that answered in time, and one that failed late', async () => {
    const undoLate = jest.fn((_late: string) => Promise.resolve());
    await expect(boundedClaim(Promise.resolve('won'), 1000, undoLate)).resolves.toBe('won');
    const failing = deferred<string>();
    await expect(boundedClaim(failing.promise, 5, undoLate)).rejects.toBeInstanceOf(
      StoreTimeoutError,
    );
    failing.reject(new Error('down'));
    await flush();
    expect(undoLate).not.toHaveBeenCalled();
  });

  it('leaves no unhandled rejection when undoing a late claim fails', async () => {
    const unhandled: unknown[] = [];
    const listener = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', listener);
    try {
      const claim = deferred<string>();
      const undoLate = jest.fn((_late: string) => Promise.reject(new Error('undo failed')));
      await expect(boundedClaim(claim.promise, 5, undoLate)).rejects.toBeInstanceOf(
        StoreTimeoutError,
      );
      claim.resolve('late claim');
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(undoLate).toHaveBeenCalledTimes(1);
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', listener);
    }
  });
});

import { type Waiter, waitWhileHeld } from '../../../lib/execution/wait-while-held';

const waiter = (concurrency: 'reject' | 'wait'): Waiter => ({
  settings: { concurrency, waitTimeoutMs: 10_000 },
  waitDurationMs: undefined,
});

describe('waitWhileHeld', () => {
  it('notes how long it waited when the key came free', async () => {
    const request = waiter('wait');
    const result = await waitWhileHeld(
      request,
      async (attempt) => attempt,
      (n) => n < 2,
    );
    expect(result).toBe(2);
    expect(request.waitDurationMs).toBeGreaterThan(0);
  });

  it('notes how long it waited when a later look failed', async () => {
    const request = waiter('wait');
    await expect(
      waitWhileHeld(
        request,
        async (attempt) => {
          if (attempt === 2) {
            throw new Error('store down');
          }
          return attempt;
        },
        () => true,
      ),
    ).rejects.toThrow('store down');
    expect(request.waitDurationMs).toBeGreaterThan(0);
  });

  it('notes no wait for a first look, answered or failed, or in reject mode', async () => {
    const failed = waiter('wait');
    await expect(
      waitWhileHeld(
        failed,
        () => Promise.reject(new Error('down')),
        () => true,
      ),
    ).rejects.toThrow('down');
    expect(failed.waitDurationMs).toBeUndefined();
    const rejecting = waiter('reject');
    expect(
      await waitWhileHeld(
        rejecting,
        async () => 'held',
        () => true,
      ),
    ).toBe('held');
    expect(rejecting.waitDurationMs).toBeUndefined();
  });
});

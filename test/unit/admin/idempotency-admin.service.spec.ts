import { IdempotencyAdmin, IdempotencyStore } from '../../../lib';
import { InMemoryIdempotencyStore } from '../../../lib/testing';

const request = (scope: string, key: string) => ({
  scope,
  key,
  fingerprint: 'fp',
  lockTimeoutMs: 60_000,
  ttlMs: 60_000,
});

describe('IdempotencyAdmin', () => {
  let now: number;
  let lease: InMemoryIdempotencyStore;
  let transactional: InMemoryIdempotencyStore;
  let admin: IdempotencyAdmin;

  beforeEach(() => {
    now = Date.UTC(2030, 0, 1);
    lease = new InMemoryIdempotencyStore({ now: () => now });
    transactional = new InMemoryIdempotencyStore({ now: () => now });
    admin = new IdempotencyAdmin(lease, transactional);
  });

  it('finds a key in either store, and acts on both', async () => {
    await transactional.claim(request('alice', 'k-tx'));
    await lease.claim(request('alice', 'k-both'));
    await transactional.claim(request('alice', 'k-both'));
    expect(await admin.find('alice', 'k-tx')).toMatchObject({ key: 'k-tx', state: 'in_flight' });
    expect(await admin.release('alice', 'k-both')).toBe(true);
    expect(await admin.find('alice', 'k-both')).toBeNull();
    expect(await admin.delete('alice', 'k-tx')).toBe(true);
    expect(await admin.delete('alice', 'k-tx')).toBe(false);
  });

  it('lists both stores together, the oldest first, up to the limit', async () => {
    await transactional.claim(request('alice', 'first'));
    now += 1000;
    await lease.claim(request('alice', 'second'));
    now += 1000;
    await transactional.claim(request('alice', 'third'));
    await lease.claim(request('bob', 'not-alice'));
    now += 1000;
    const keys = async (olderThanMs: number, limit?: number) =>
      (await admin.listInFlight('alice', { olderThanMs, limit })).map((found) => found.key);
    expect(await keys(0)).toEqual(['first', 'second', 'third']);
    expect(await keys(2000)).toEqual(['first', 'second']);
    expect(await keys(0, 2)).toEqual(['first', 'second']);
  });

  it.each(['', 'é', 'tab\tkey', 'x'.repeat(256)])(
    'refuses %j, which no request could have stored',
    async (key) => {
      await expect(admin.find('alice', key)).rejects.toThrow(RangeError);
      await expect(admin.release('alice', key)).rejects.toThrow(RangeError);
      await expect(admin.delete('alice', key)).rejects.toThrow(RangeError);
    },
  );

  it.each([' padded ', '"quoted"', 'a"b'])(
    'finds %j, which a quoted header stores as is',
    async (key) => {
      await lease.claim(request('alice', key));
      expect(await admin.find('alice', key)).toMatchObject({ key, state: 'in_flight' });
      expect(await admin.delete('alice', key)).toBe(true);
    },
  );

  it('refuses a scope or key that is not a string', async () => {
    await expect(admin.find(['alice', 'bob'] as unknown as string, 'k')).rejects.toThrow(
      RangeError,
    );
    await expect(admin.delete('alice', ['k'] as unknown as string)).rejects.toThrow(RangeError);
  });

  it('releases the claim it is given, and no later one', async () => {
    await lease.claim({ ...request('alice', 'k'), lockTimeoutMs: 1000 });
    const first = await admin.find('alice', 'k');
    now += 2000;
    await lease.claim(request('alice', 'k'));
    const second = await admin.find('alice', 'k');
    expect(second?.claimId).not.toBe(first?.claimId);
    expect(await admin.release('alice', 'k', { claimId: first?.claimId })).toBe(false);
    expect(await admin.find('alice', 'k')).toMatchObject({ claimId: second?.claimId });
    expect(await admin.release('alice', 'k', { claimId: second?.claimId })).toBe(true);
    await expect(admin.release('alice', 'k', { claimId: 'abc' })).rejects.toThrow(/claimId/);
  });

  it.each([
    [{ olderThanMs: -1 }, /olderThanMs/],
    [{ olderThanMs: Number.NaN }, /olderThanMs/],
    [{ olderThanMs: 1e15 }, /olderThanMs/],
    [{ limit: 0 }, /limit/],
    [{ limit: 1001 }, /limit/],
    [{ limit: 1.5 }, /limit/],
  ])('refuses a listing of %j', async (options, message) => {
    await expect(admin.listInFlight('alice', options)).rejects.toThrow(message);
  });

  it('says which store offers no key administration', async () => {
    class BareStore extends IdempotencyStore {
      claim = () => Promise.resolve({ kind: 'mismatch' as const });
      complete = () => Promise.resolve(false);
      markNotReplayable = () => Promise.resolve(false);
      release = () => Promise.resolve(false);
      purgeExpired = () => Promise.resolve(0);
    }
    const bare = new IdempotencyAdmin(new BareStore());
    await expect(bare.find('alice', 'k')).rejects.toThrow(
      /BareStore does not offer key administration/,
    );
  });
});

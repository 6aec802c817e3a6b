import type { ClaimRequest } from '../../store/claim-result.interface';
import type { IdempotencyStore } from '../../store/idempotency-store';
import {
  type IdempotencyTransactionHandle,
  type TransactionalClaimResult,
  TransactionalIdempotencyStore,
} from '../../store/transactional-idempotency-store';
import {
  type ConformanceContext,
  declarationCase,
  replayOf,
  sampleResponse,
} from './conformance-context';

/** Parallel transactional claims of one key. */
const PARALLEL_CLAIMS = 8;

/** What a transactional case gets: the store, and claims that the case cleans up after. */
interface TransactionalCase {
  store: TransactionalIdempotencyStore;
  /** Claims `request` in a transaction, failing the test unless it is claimed. */
  open(request: ClaimRequest): Promise<IdempotencyTransactionHandle>;
  /** Claims in a transaction, whatever the result; a claimed one is rolled back after the test. */
  attempt(request: ClaimRequest): Promise<TransactionalClaimResult>;
  /** Writes a handler's marker through `transaction`, when the suite was given a way to. */
  write(transaction: IdempotencyTransactionHandle, marker: string): Promise<void>;
  /** Whether the marker is committed; `expected` when the suite cannot tell. */
  isCommitted(marker: string, expected: boolean): Promise<boolean>;
}

/** Whether `store` is transactional as the module decides it (`instanceof`, as the interceptor). */
export function transactionalDeclarationCase<S extends IdempotencyStore>(
  c: ConformanceContext<S>,
): void {
  declarationCase(
    c,
    'transactional',
    c.options.transactional ?? false,
    ['is a TransactionalIdempotencyStore', 'is not a TransactionalIdempotencyStore'],
    (store) => store instanceof TransactionalIdempotencyStore,
  );
}

/**
 * Transactional mode: a claim in a transaction commits or rolls back with the handler's writes,
 * is invisible to other requests until then, and makes them wait (`busy`) rather than block.
 */
export function transactionalCases<S extends IdempotencyStore>(c: ConformanceContext<S>): void {
  const { expect } = c;
  const { shortMs, longMs } = c.settings;
  const writes = c.options.transactionWrites;

  const transactional = (name: string, body: (t: TransactionalCase) => Promise<void>) =>
    c.test(name, async () => {
      const store = c.store() as unknown as TransactionalIdempotencyStore;
      const opened: IdempotencyTransactionHandle[] = [];
      const attempt = async (request: ClaimRequest) => {
        const result = await store.claimInTransaction(request);
        if (result.kind === 'claimed') {
          opened.push(result.transaction);
        }
        return result;
      };
      try {
        await body({
          store,
          attempt,
          open: async (request) => {
            const result = await attempt(request);
            expect(result).toMatchObject({ kind: 'claimed' });
            return (result as Extract<TransactionalClaimResult, { kind: 'claimed' }>).transaction;
          },
          write: async (transaction, marker) => writes?.write(transaction, marker),
          isCommitted: async (marker, expected) => (writes ? writes.isCommitted(marker) : expected),
        });
      } finally {
        // Never throws, and does nothing to a transaction that ended.
        await Promise.all(opened.map((transaction) => transaction.rollback()));
      }
    });

  c.describe('transactional mode', () => {
    transactional('commits the claim, the writes and the response together', async (t) => {
      const request = c.request('committed');
      const transaction = await t.open(request);
      expect(transaction.handle).toMatchObject({ scope: request.scope, key: 'committed' });
      await t.write(transaction, `${c.scope()}-committed`);
      expect(await t.store.lookup(request)).toEqual({ kind: 'busy' });
      expect(await t.attempt(request)).toEqual({ kind: 'busy' });
      expect(await t.isCommitted(`${c.scope()}-committed`, false)).toBe(false);

      const response = sampleResponse('committed');
      await transaction.completeAndCommit(response, request.ttlMs);
      expect(await t.isCommitted(`${c.scope()}-committed`, true)).toBe(true);
      expect(await t.store.lookup(request)).toEqual(replayOf(response));
      expect(await t.attempt(request)).toEqual(replayOf(response));
      expect(await c.claim(request)).toEqual(replayOf(response));
      expect(await t.attempt({ ...request, fingerprint: 'fp-2' })).toEqual({ kind: 'mismatch' });
      // A rollback after the commit is harmless.
      await transaction.rollback();
      expect(await t.store.lookup(request)).toEqual(replayOf(response));
    });

    transactional('leaves nothing of a claim that rolled back', async (t) => {
      const request = c.request('rolled-back');
      const transaction = await t.open(request);
      await t.write(transaction, `${c.scope()}-rolled-back`);
      await transaction.rollback();
      expect(await t.store.lookup(request)).toBe(null);
      expect(await t.isCommitted(`${c.scope()}-rolled-back`, false)).toBe(false);
      await c.claimed({ ...request, fingerprint: 'fp-2' });
    });

    transactional(
      `gives a key to one of ${PARALLEL_CLAIMS} parallel claims; the others are busy`,
      async (t) => {
        const request = c.request('parallel');
        const results = await Promise.all(
          Array.from({ length: PARALLEL_CLAIMS }, () => t.attempt({ ...request })),
        );
        const kinds = results.map((result) => result.kind);
        expect(kinds.filter((kind) => kind === 'claimed')).toHaveLength(1);
        expect(kinds.filter((kind) => kind === 'busy')).toHaveLength(PARALLEL_CLAIMS - 1);
      },
    );

    transactional('discards the writes and stores the response alone', async (t) => {
      const request = c.request('discarded');
      const transaction = await t.open(request);
      await t.write(transaction, `${c.scope()}-discarded`);
      const response = sampleResponse('discarded', 400);
      expect(await transaction.discardWritesAndComplete(response, request.ttlMs)).toBe(true);
      expect(await t.isCommitted(`${c.scope()}-discarded`, false)).toBe(false);
      expect(await t.store.lookup(request)).toEqual(replayOf(response));
      expect(await c.claim(request)).toEqual(replayOf(response));
    });

    transactional('marks a key not replayable and commits', async (t) => {
      const request = c.request('spent');
      const transaction = await t.open(request);
      await transaction.markNotReplayableAndCommit(201, request.ttlMs);
      const spent = { kind: 'not-replayable', status: 201 };
      expect(await t.store.lookup(request)).toEqual(spent);
      expect(await t.attempt(request)).toEqual(spent);
      expect(await c.claim(request)).toEqual(spent);
    });

    transactional('sees the keys of lease mode', async (t) => {
      expect(await t.store.lookup(c.request('unknown'))).toBe(null);

      const running = c.request('running');
      await c.claimed(running);
      expect(await t.store.lookup(running)).toMatchObject({ kind: 'in-flight' });
      expect(await t.attempt(running)).toMatchObject({ kind: 'in-flight' });
      const other = { ...running, fingerprint: 'fp-2' };
      expect(await t.store.lookup(other)).toEqual({ kind: 'mismatch' });
      expect(await t.attempt(other)).toEqual({ kind: 'mismatch' });

      const finished = c.request('finished');
      const response = sampleResponse('finished');
      await c.store().complete(await c.claimed(finished), response, longMs);
      expect(await t.store.lookup(finished)).toEqual(replayOf(response));
      expect(await t.attempt(finished)).toEqual(replayOf(response));
    });

    transactional('takes over an ended lease, fencing the claim it replaces', async (t) => {
      const request = c.request('taken-over', { lockTimeoutMs: shortMs });
      const stale = await c.claimed(request);
      await c.outlive(shortMs);
      expect(await t.store.lookup(request)).toBe(null);
      const transaction = await t.open(request);
      const response = sampleResponse('current');
      await transaction.completeAndCommit(response, request.ttlMs);
      expect(await c.store().complete(stale, sampleResponse('stale'), longMs)).toBe(false);
      expect(await c.store().release(stale)).toBe(false);
      expect(await t.store.lookup(request)).toEqual(replayOf(response));
    });

    transactional('treats an expired key as new', async (t) => {
      const request = c.request('expired');
      const handle = await c.claimed(request);
      await c.store().complete(handle, sampleResponse('expired'), shortMs);
      await c.outlive(shortMs);
      const other = { ...request, fingerprint: 'fp-2' };
      expect(await t.store.lookup(other)).toBe(null);
      await t.open(other);
    });
  });
}

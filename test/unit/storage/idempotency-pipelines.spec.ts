import type { ClaimRequest } from '../../../lib/store/claim-result.interface';
import {
  openTransaction,
  transactionalClaim,
} from '../../../lib/postgres/store/idempotency-pipelines';
import { idempotencyStatements } from '../../../lib/postgres/sql/idempotency.sql';

const request: ClaimRequest = {
  scope: '',
  key: 'k',
  fingerprint: null,
  lockTimeoutMs: 60_000,
  ttlMs: 86_400_000,
};

describe('openTransaction', () => {
  it('sets the statement_timeout of the transaction alone, after its BEGIN', () => {
    expect(openTransaction('BEGIN ISOLATION LEVEL REPEATABLE READ', 30_000)).toEqual([
      { text: 'BEGIN ISOLATION LEVEL REPEATABLE READ' },
      { text: 'SET LOCAL statement_timeout = 30000' },
    ]);
  });

  it("is the BEGIN alone for 0, which leaves the session's own statement_timeout", () => {
    expect(openTransaction('BEGIN', 0)).toEqual([{ text: 'BEGIN' }]);
  });

  it.each([-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31])(
    'refuses %p, which would be spliced into SQL or refused by PostgreSQL',
    (ms) => {
      expect(() => openTransaction('BEGIN', ms)).toThrow(
        /statementTimeoutMs must be a whole number/,
      );
    },
  );
});

describe('transactionalClaim', () => {
  it.each([false, true])(
    'opens the transaction in the round trip of the claim (partitioned: %p)',
    (partitioned) => {
      const sql = idempotencyStatements(undefined, partitioned);
      const opening = openTransaction('BEGIN', 5000);
      const first = transactionalClaim(sql, request, 'token', opening);
      expect(first.statements.slice(0, 2)).toEqual(opening);
      expect(first.statements[first.at].name).toBe(`${sql.namePrefix}_claim_in_transaction`);
      // A later attempt runs inside the open transaction.
      const later = transactionalClaim(sql, request, 'token', []);
      expect(later.statements).toEqual(first.statements.slice(2));
    },
  );
});

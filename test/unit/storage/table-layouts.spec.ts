import type { ClaimRequest } from '../../../lib/store/claim-result.interface';
import { PartitionedTableLayout } from '../../../lib/postgres/layout/partitioned-table.layout';
import { openTransaction } from '../../../lib/postgres/layout/planned';
import { SingleTableLayout } from '../../../lib/postgres/layout/single-table.layout';
import type { TableLayoutContext } from '../../../lib/postgres/layout/table-layout';

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

/** Building statements reads neither the isolation level nor the pool. */
const context: TableLayoutContext = {
  table: 'idempotency_records',
  begin: () => 'BEGIN',
  isolationLevel: () => undefined,
  pool: () => {
    throw new Error('no pool in unit tests');
  },
  recoveryPoints: false,
};
const layouts = {
  single: () => new SingleTableLayout(context),
  partitioned: () =>
    new PartitionedTableLayout(context, {
      partitionMs: 1000,
      aheadMs: 10_000,
      claimReachMs: 5000,
      maintenanceIntervalMs: 1000,
      detachTimeoutMs: 1000,
    }),
};

describe('claimInTransaction', () => {
  it.each(['single', 'partitioned'] as const)(
    'opens the transaction in the round trip of the claim (%s table)',
    (kind) => {
      const layout = layouts[kind]();
      const opening = openTransaction('BEGIN', 5000);
      const first = layout.claimInTransaction(request, 'token', opening);
      expect(first.statements.slice(0, 2)).toEqual(opening);
      expect(first.statements[first.at].name).toBe(`${layout.namePrefix}_claim_in_transaction`);
      // A later attempt runs inside the open transaction.
      const later = layout.claimInTransaction(request, 'token', []);
      expect(later.statements).toEqual(first.statements.slice(2));
    },
  );
});

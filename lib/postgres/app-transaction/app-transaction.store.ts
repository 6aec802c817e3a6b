import { randomUUID } from 'node:crypto';
import type { Pool } from 'pg';
import type { ClaimRequest } from '../../store/claim-result.interface';
import type {
  TransactionLimits,
  TransactionalClaimResult,
  TransactionalIdempotencyStore,
  TransactionalLookupResult,
} from '../../store/transactional-idempotency-store';
import { runPipeline } from '../driver/pipelined-query';
import { CLAIM_SAVEPOINT, type Planned, localStatementTimeout } from '../layout/planned';
import { CLAIM_ATTEMPTS, type ClaimRow, claimHandle, decideRow } from '../store/claim-row';
import { PgPoolIdempotencyStore } from '../store/pg-pool-idempotency.store';
import { type AppClaim, AppTransaction } from './app-transaction';
import { type PostgresAppTransactions, transactionClient } from './app-transactions';

/** What a claim found instead of winning the key. */
type NotWon = Exclude<TransactionalClaimResult, { kind: 'claimed' }>;

/**
 * The pool store that also runs transactional routes, inside the application's own transactions
 * (`@nestjs-cls/transactional`, through `transactions`): the claim, the handler's writes and the
 * response commit together, in the transaction the handler finds as its own. Lease routes, the
 * read before each claim (a finished or held key is answered there, opening no transaction), the
 * lookups of waiting duplicates and the purge use the pool. An ordinary table only: the claim of
 * a partitioned one needs READ COMMITTED from its BEGIN, which the application sends.
 */
export class AppTransactionIdempotencyStore<TTx>
  extends PgPoolIdempotencyStore
  implements TransactionalIdempotencyStore<TTx>
{
  constructor(
    pool: Pool | (() => Pool),
    private readonly transactions: PostgresAppTransactions<TTx>,
    tableName?: string,
  ) {
    super(pool, tableName);
  }

  /**
   * Claims the key in a new transaction of the application's. A key that is already answered
   * (completed, not replayable, held by a lease or by another transaction, or claimed with
   * another payload) is answered first by one read on the pool, opening no transaction: a finished
   * record does not change until it expires, so reading it outside the transaction is as good as
   * reading it inside. A key that the read finds free (new, expired) is claimed in the
   * transaction, which decides again under the key's lock.
   */
  async claimInTransaction(
    request: ClaimRequest,
    limits?: TransactionLimits,
  ): Promise<TransactionalClaimResult<TTx>> {
    let known: TransactionalLookupResult;
    try {
      known = await this.lookup(request);
    } catch (error) {
      throw this.layout.explain(error);
    }
    if (known !== null) {
      return known;
    }
    const transaction = new AppTransaction(
      this.transactions,
      {
        layout: this.layout,
        transactionalTtlMs: (claimTtlMs, ttlMs) =>
          this.layout.transactionalTtlMs(claimTtlMs, ttlMs),
      },
      request,
    );
    try {
      const claimed = await transaction.open((tx) =>
        this.claimIn(tx, request, limits?.statementTimeoutMs ?? 0),
      );
      return 'won' in claimed ? { kind: 'claimed', transaction } : claimed.other;
    } catch (error) {
      throw this.layout.explain(error);
    }
  }

  /**
   * The claim's statements in the application's transaction: in one round trip on its pg client
   * when `transactions.client` shows it (the savepoint with them, won or not: a claim that did not
   * win rolls the whole transaction back), else one at a time through `transactions.query`.
   */
  private async claimIn(
    tx: TTx,
    request: ClaimRequest,
    statementTimeoutMs: number,
  ): Promise<AppClaim<NotWon>> {
    const client = transactionClient(this.transactions, tx);
    const opening = localStatementTimeout(statementTimeoutMs);
    for (let attempt = 0; attempt < CLAIM_ATTEMPTS; attempt++) {
      const token = randomUUID();
      const claim = this.layout.claimInTransaction(request, token, attempt === 0 ? opening : []);
      const row = client
        ? ((await runPipeline(client, [...claim.statements, CLAIM_SAVEPOINT]))[claim.at].rows[0] as
            ClaimRow | undefined)
        : await this.claimOneByOne(tx, claim);
      if (row?.outcome === 'claimed') {
        if (!client) {
          await this.transactions.query(tx, CLAIM_SAVEPOINT.text, []);
        }
        return { won: claimHandle(request, token, row) };
      }
      if (row?.outcome === 'busy') {
        return { other: { kind: 'busy' } };
      }
      const decision = row ? decideRow(row, request) : { kind: 'retry' as const };
      if (decision.kind !== 'retry') {
        return { other: decision };
      }
    }
    return { other: { kind: 'busy' } };
  }

  /** Sends `claim`'s statements through `transactions.query`; returns the claim's row. */
  private async claimOneByOne(tx: TTx, claim: Planned): Promise<ClaimRow | undefined> {
    let row: ClaimRow | undefined;
    for (const [index, statement] of claim.statements.entries()) {
      const rows = await this.transactions.query(tx, statement.text, statement.values ?? []);
      if (index === claim.at) {
        row = rows[0] as ClaimRow | undefined;
      }
    }
    return row;
  }
}

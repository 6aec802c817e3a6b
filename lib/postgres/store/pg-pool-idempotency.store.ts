import { randomUUID } from 'node:crypto';
import type { Pool, QueryResultRow } from 'pg';
import type { ClaimHandle, ClaimRequest, ClaimResult } from '../../store/claim-result.interface';
import { IdempotencyStore } from '../../store/idempotency-store';
import type {
  IdempotencyKeyAdmin,
  IdempotencyKeyInfo,
  InFlightQuery,
} from '../../store/key-admin.interface';
import type {
  IdempotencyHealthQuery,
  IdempotencyStoreHealth,
} from '../../store/idempotency-store-health.interface';
import type {
  IdempotencyRecoveryPoints,
  IdempotencyStepTransaction,
  IdempotencyStepTransactions,
  RecordedStep,
} from '../../store/recovery-points.interface';
import type { StoredResponse } from '../../store/stored-response.interface';
import type { TransactionalLookupResult } from '../../store/transactional-idempotency-store';
import {
  PipelineError,
  type PipelineResult,
  runPipeline,
  sendsOneSync,
} from '../driver/pipelined-query';
import { guardCheckedOut } from '../driver/checked-out';
import { asError } from '../driver/sqlstate';
import type { IdempotencyPartitioning } from '../layout/idempotency-partitions';
import { PartitionedTableLayout } from '../layout/partitioned-table.layout';
import { type Planned, inExplicitTransaction } from '../layout/planned';
import { SingleTableLayout } from '../layout/single-table.layout';
import type { IdempotencyTableLayout } from '../layout/table-layout';
import { IDEMPOTENCY_TABLE } from '../sql/table-name';
import {
  CLAIM_ATTEMPTS,
  type ClaimRow,
  claimHandle,
  decideRow,
  followMovedRow,
  recordedSteps,
} from './claim-row';
import { readPostgresHealth } from './postgres-health-check';
import { PgStepTransaction } from './step-transaction';
import { PostgresKeyAdmin } from './postgres-key-admin';

/**
 * The PostgreSQL store in lease mode on a node-postgres `Pool`, with no ORM: one table, its
 * statements prepared and sent on the pool directly. The pool is borrowed, never ended. For apps
 * on Prisma, Drizzle, Kysely, Knex or plain pg; `pgPoolStore()` registers it, and can own a pool
 * of its own. Routes with `transactional: true` need a store that joins the handler's
 * transaction (`postgresStore()` on TypeORM).
 *
 * @example
 * ```ts
 * const pool = new Pool({ connectionString: process.env.DATABASE_URL });
 * IdempotencyModule.forRoot({ store: new PgPoolIdempotencyStore(pool) });
 * ```
 */
export class PgPoolIdempotencyStore
  extends IdempotencyStore
  implements IdempotencyKeyAdmin, IdempotencyRecoveryPoints, IdempotencyStepTransactions
{
  /**
   * How this store's table is laid out, and what each operation sends.
   * @internal
   */
  protected layout: IdempotencyTableLayout;
  private readonly keyAdmin: PostgresKeyAdmin;
  private readonly poolSource: () => Pool;
  private readonly layoutFor: (recoveryPoints: boolean) => IdempotencyTableLayout;
  private recoveryPoints = false;

  /**
   * @param pool the pg pool, or a function that returns it when first used (for a pool created
   *   after the store).
   * @param tableName the idempotency table, optionally schema-qualified. Default:
   *   `idempotency_records`.
   * @param partitioning set when the table is partitioned by expiry (created with
   *   `createPartitionedIdempotencyTableSql`): `maintain()` then creates its partitions ahead and
   *   `purgeExpired()` drops the expired ones.
   */
  constructor(
    pool: Pool | (() => Pool),
    tableName?: string,
    partitioning?: IdempotencyPartitioning,
  ) {
    super();
    this.poolSource = typeof pool === 'function' ? pool : () => pool;
    const context = {
      table: tableName ?? IDEMPOTENCY_TABLE,
      // Read when used: a subclass sets what they depend on after this constructor.
      begin: () => this.transactionBegin(),
      isolationLevel: () => this.isolationLevel(),
      pool: () => this.pool(),
    };
    this.layoutFor = (recoveryPoints) =>
      partitioning
        ? new PartitionedTableLayout({ ...context, recoveryPoints }, partitioning)
        : new SingleTableLayout({ ...context, recoveryPoints });
    this.layout = this.layoutFor(false);
    this.keyAdmin = new PostgresKeyAdmin(context.table, context.pool);
  }

  /**
   * Keeps the steps of claims from now on (the module calls it before `prepare()` when it
   * records steps): in the table's `steps` column, which `prepare()` then requires.
   */
  enableRecoveryPoints(): void {
    if (!this.recoveryPoints) {
      this.recoveryPoints = true;
      this.layout = this.layoutFor(true);
    }
  }

  /**
   * Checks that the table's layout is the configured one; for a partitioned table, creates the
   * partitions the next claims need.
   */
  override prepare(): Promise<void> {
    return this.layout.prepare();
  }

  /** For a partitioned table: creates the partitions ahead. Nothing for an ordinary table. */
  override maintain(): Promise<void> {
    return this.layout.maintain();
  }

  /** The partitioning's `maintenanceIntervalMs`; 0 for an ordinary table. */
  override maintenanceIntervalMs(): number {
    return this.layout.maintenanceIntervalMs();
  }

  async claim(request: ClaimRequest): Promise<ClaimResult> {
    for (let attempt = 0; attempt < CLAIM_ATTEMPTS; attempt++) {
      const token = randomUUID();
      const { rows } = await this.runPlanned<ClaimRow>(this.layout.claim(request, token));
      const row = rows[0];
      if (row?.outcome === 'claimed') {
        const handle = claimHandle(request, token, row);
        return this.recoveryPoints
          ? { kind: 'claimed', handle, steps: recordedSteps(row.steps) }
          : { kind: 'claimed', handle };
      }
      const decision = row ? decideRow(row, request) : { kind: 'retry' as const };
      if (decision.kind !== 'retry') {
        return decision;
      }
    }
    // The key kept changing hands under us: someone else is working on it right now.
    return { kind: 'in-flight', retryAfterMs: 1000 };
  }

  /**
   * For transactional routes: a key's live row without claiming it, in one read on the pool, and
   * whether a transaction holds the key's lock (see `TransactionalIdempotencyStore.lookup`).
   */
  async lookup(request: ClaimRequest): Promise<TransactionalLookupResult> {
    const { rows } = await this.pool().query<ClaimRow & { free: boolean }>({
      name: `${this.layout.namePrefix}_lookup`,
      text: this.layout.lookup,
      values: [request.scope, request.key],
    });
    const row = rows[0];
    const decision = row.outcome === 'existing' ? decideRow(row, request) : null;
    if (decision !== null && decision.kind !== 'retry') {
      return decision;
    }
    return row.free ? null : { kind: 'busy' };
  }

  async complete(handle: ClaimHandle, response: StoredResponse, ttlMs: number): Promise<boolean> {
    const { rowCount } = await this.runPlanned(this.layout.complete(handle, response, ttlMs));
    return rowCount === 1;
  }

  async markNotReplayable(
    handle: ClaimHandle,
    status: number | null,
    ttlMs: number,
  ): Promise<boolean> {
    const { rows, rowCount } = await this.runPlanned(
      this.layout.markNotReplayable(handle, status, ttlMs),
    );
    followMovedRow(handle, rows);
    return rowCount === 1;
  }

  async release(handle: ClaimHandle): Promise<boolean> {
    const { rowCount } = await this.runPlanned(this.layout.release(handle));
    return rowCount === 1;
  }

  /**
   * Records the claim's `index`-th step and renews its lease, in one fenced UPDATE (see
   * `IdempotencyRecoveryPoints`); needs `enableRecoveryPoints()` first.
   */
  async saveStep(
    handle: ClaimHandle,
    index: number,
    step: RecordedStep,
    leaseMs: number,
  ): Promise<boolean> {
    const { rows, rowCount } = await this.runPlanned(
      this.layout.saveStep(handle, index, step, leaseMs),
    );
    followMovedRow(handle, rows);
    return rowCount === 1;
  }

  /**
   * Opens a transaction on a pool connection for one step's work (`IdempotencySteps.
   * runInTransaction`): the work writes through the connection, a pg `PoolClient`, and the
   * step's recovery point commits with its writes.
   */
  async beginStepTransaction(): Promise<IdempotencyStepTransaction> {
    const client = await this.pool().connect();
    // Held while the step's work runs, which may be long: a connection reset meanwhile fails the
    // step's next statement or its commit.
    const release = guardCheckedOut(client);
    const isolation = this.layout.stepIsolation();
    try {
      await client.query(
        isolation === undefined ? this.transactionBegin() : `BEGIN ISOLATION LEVEL ${isolation}`,
      );
    } catch (error) {
      release(asError(error));
      throw error;
    }
    return new PgStepTransaction(client, client, this.layout, {
      commit: () => client.query('COMMIT'),
      rollback: () => client.query('ROLLBACK'),
      release,
    });
  }

  /**
   * Ordinary table: deletes up to `batchSize` expired rows. Partitioned table: drops the
   * partitions whose rows have all expired, whatever `batchSize`, and returns their estimated row
   * count.
   */
  purgeExpired(batchSize: number): Promise<number> {
    return this.layout.purgeExpired(batchSize);
  }

  /** The live row of a key (see `IdempotencyAdmin.find`). */
  findKey(scope: string, key: string, withResponse: boolean): Promise<IdempotencyKeyInfo | null> {
    return this.keyAdmin.findKey(scope, key, withResponse);
  }

  /** Deletes a key's row while it is in flight (see `IdempotencyAdmin.release`). */
  releaseKey(scope: string, key: string, claimId?: string): Promise<boolean> {
    return this.keyAdmin.releaseKey(scope, key, claimId);
  }

  /** Deletes a key's live row (see `IdempotencyAdmin.delete`). */
  deleteKey(scope: string, key: string): Promise<boolean> {
    return this.keyAdmin.deleteKey(scope, key);
  }

  /** A scope's rows in flight, the oldest first (see `IdempotencyAdmin.listInFlight`). */
  listInFlight(scope: string, query: InFlightQuery): Promise<IdempotencyKeyInfo[]> {
    return this.keyAdmin.listInFlight(scope, query);
  }

  /**
   * Opens a read-only transaction on a pool connection (the database answers), then reads, each
   * read cut off by a local `statement_timeout` of `detailTimeoutMs` and then reported as
   * `'unknown'`: ordinary table, the expired rows waiting for the purge, counted through the
   * `expires_at` index up to `purgeBacklogLimit`; partitioned table, from the catalog, how far the
   * partitions reach (a problem when short of what claims need) and the expired partitions with
   * their estimated rows; either, when asked, the oldest in-flight row's age (see
   * `createInFlightIndexSql`).
   */
  override async health(query: IdempotencyHealthQuery): Promise<IdempotencyStoreHealth> {
    return readPostgresHealth(this.pool(), this.layout, query);
  }

  /**
   * Runs one operation: a single statement straight on the pool, several (a partitioned table's
   * locked transaction) in one round trip on one connection.
   */
  private async runPlanned<R extends QueryResultRow = QueryResultRow>(
    planned: Planned,
  ): Promise<PipelineResult<R>> {
    try {
      return await this.pipelineOnPool<R>(planned);
    } catch (error) {
      throw this.layout.explain(error);
    }
  }

  /**
   * Runs a plan on a pooled connection. A single statement goes this way too: the pipeline's own
   * query object skips what `pool.query()` does for every call (copying the query config,
   * building a result object with per-field parsers), about 20 us of CPU per statement.
   */
  private async pipelineOnPool<R extends QueryResultRow>(
    planned: Planned,
  ): Promise<PipelineResult<R>> {
    const client = await this.pool().connect();
    const release = guardCheckedOut(client);
    // The key's lock must be held from its statement to the write's commit.
    const plan =
      planned.implicitTransaction && !sendsOneSync(client)
        ? inExplicitTransaction(planned)
        : planned;
    let results: PipelineResult[];
    try {
      results = await runPipeline(client, plan.statements);
    } catch (error) {
      if (!leavesConnectionSound(error)) {
        // A connection that may not serve the next statement is dropped, open transaction and all.
        release(new Error(String(error)));
      } else if (plan.implicitTransaction || plan.statements.length === 1) {
        // PostgreSQL rolled the implicit transaction back at the Sync.
        release();
      } else {
        // A failed statement leaves an explicit transaction open and aborted: end it before the
        // connection is reused, or drop the connection.
        await client.query('ROLLBACK').then(
          () => release(),
          (rollbackError: Error) => release(rollbackError),
        );
      }
      throw error;
    }
    release();
    return results[plan.at] as PipelineResult<R>;
  }

  /**
   * The pool every statement of the store goes to.
   * @internal
   */
  protected pool(): Pool {
    return this.poolSource();
  }

  /**
   * The BEGIN of a transaction that claims a key (a subclass that runs transactions sets it).
   * @internal
   */
  protected transactionBegin(): string {
    return 'BEGIN';
  }

  /**
   * The isolation level the application's transactions use; `undefined` for the server's.
   * @internal
   */
  protected isolationLevel(): string | undefined {
    return undefined;
  }
}

/** SQLSTATEs after which a connection does not serve the store's next statement. */
const BREAKS_CONNECTION = new Set([
  // A prepared statement the server no longer has (after DEALLOCATE ALL or DISCARD ALL on the
  // connection): node-postgres would go on binding it by name.
  '26000',
  // A transaction left aborted, or one that must not go on.
  '25P02',
  '25P03',
  // A prepared statement whose result type changed under it fails on every execution.
  '0A000',
]);

/**
 * Whether a connection can serve again after `error`: PostgreSQL raised it for the statement,
 * not for the session. Dropped: no SQLSTATE (the socket failed), FATAL or PANIC (an
 * administrator's or a crash's shutdown), the connection-exception class (08), the shutdown codes
 * (57P..), and BREAKS_CONNECTION. Ordinary errors (a unique violation, a serialization failure,
 * a statement timeout, 57014) keep it: dropping them would turn an overloaded server's timeouts
 * into a storm of reconnects. The severity is compared in English only where it ends the
 * session; a server that reports in another language still has its SQLSTATEs read.
 */
function leavesConnectionSound(error: unknown): boolean {
  if (!(error instanceof PipelineError) || !/^[0-9A-Z]{5}$/.test(error.code ?? '')) {
    return false;
  }
  const code = error.code as string;
  const severity = (error.cause as { severity?: unknown } | null)?.severity;
  return (
    severity !== 'FATAL' &&
    severity !== 'PANIC' &&
    !code.startsWith('08') &&
    !code.startsWith('57P') &&
    !BREAKS_CONNECTION.has(code)
  );
}

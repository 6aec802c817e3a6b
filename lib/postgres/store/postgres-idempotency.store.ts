import { randomUUID } from 'node:crypto';
import type { Pool, PoolClient, QueryResultRow } from 'pg';
import type { DataSource, EntityManager, QueryRunner } from 'typeorm';
import { decideExistingKey } from '../../protocol/claim-decision';
import type { ClaimHandle, ClaimRequest, ClaimResult } from '../../store/claim-result.interface';
import type {
  IdempotencyKeyAdmin,
  IdempotencyKeyInfo,
  InFlightQuery,
} from '../../store/key-admin.interface';
import type {
  IdempotencyHealthQuery,
  IdempotencyStoreHealth,
} from '../../store/idempotency-store-health.interface';
import type { StoredResponse } from '../../store/stored-response.interface';
import {
  TransactionalIdempotencyStore,
  type TransactionLimits,
  type TransactionalClaimResult,
  type TransactionalLookupResult,
} from '../../store/transactional-idempotency-store';
import { PartitionedTableLayout } from '../layout/partitioned-table.layout';
import { type Planned, inExplicitTransaction, openTransaction } from '../layout/planned';
import { SingleTableLayout } from '../layout/single-table.layout';
import type { IdempotencyTableLayout } from '../layout/table-layout';
import type { IdempotencyPartitioning } from '../layout/idempotency-partitions';
import { IDEMPOTENCY_TABLE } from '../sql/table-name';
import {
  PipelineError,
  type PipelineResult,
  runPipeline,
  sendsOneSync,
} from '../driver/pipelined-query';
import { readPostgresHealth } from './postgres-health-check';
import { PostgresIdempotencyTransaction } from './postgres-idempotency.transaction';
import { PostgresKeyAdmin } from './postgres-key-admin';
import {
  beginStatement,
  transactionAbandoned,
  transactionStarted,
  transactionStarting,
} from './typeorm-transaction-state';

/** How often a claim is re-attempted when the key changes under it before answering 409. */
const CLAIM_ATTEMPTS = 4;

interface ClaimRow extends QueryResultRow {
  outcome: 'claimed' | 'existing' | 'busy' | null;
  state: 'in_flight' | 'completed' | 'not_replayable' | null;
  fingerprint: string | null;
  response_status: number | null;
  response_headers: string | null;
  response_body: Buffer | null;
  lease_left_ms: number | null;
  /** Partitioned table: where the claimed row is filed (epoch milliseconds, as text). */
  claimed_expires_at_ms?: string | null;
}

type Decided = Exclude<ClaimResult, { kind: 'claimed' }> | { kind: 'retry' };

/**
 * The default store: one PostgreSQL table, reached through the pg pool of the application's
 * TypeORM `DataSource` (its size and connection settings are the DataSource's). Statements are
 * prepared and sent on the pool directly: no ORM query building on the hot path. It also runs
 * transactional mode, on a query runner of the same DataSource.
 */
export class PostgresIdempotencyStore
  extends TransactionalIdempotencyStore<EntityManager>
  implements IdempotencyKeyAdmin
{
  private readonly layout: IdempotencyTableLayout;
  private readonly keyAdmin: PostgresKeyAdmin;
  private begin: string | undefined;

  /**
   * @param dataSource an initialised TypeORM DataSource on PostgreSQL (its pool is borrowed).
   * @param tableName the idempotency table, optionally schema-qualified. Default:
   *   `idempotency_records`.
   * @param partitioning set when the table is partitioned by expiry (created with
   *   `createPartitionedIdempotencyTableSql`): `maintain()` then creates its partitions ahead and
   *   `purgeExpired()` drops the expired ones.
   */
  constructor(
    private readonly dataSource: DataSource,
    tableName?: string,
    partitioning?: IdempotencyPartitioning,
  ) {
    super();
    const context = {
      table: tableName ?? IDEMPOTENCY_TABLE,
      dataSource,
      dataSourceBegin: () => beginStatement(dataSource),
      pool: () => this.pool(),
    };
    this.layout = partitioning
      ? new PartitionedTableLayout(context, partitioning)
      : new SingleTableLayout(context);
    this.keyAdmin = new PostgresKeyAdmin(context.table, context.pool);
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
        return { kind: 'claimed', handle: claimHandle(request, token, row) };
      }
      const decision = row ? decideRow(row, request) : { kind: 'retry' as const };
      if (decision.kind !== 'retry') {
        return decision;
      }
    }
    // The key kept changing hands under us: someone else is working on it right now.
    return { kind: 'in-flight', retryAfterMs: 1000 };
  }

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

  async claimInTransaction(
    request: ClaimRequest,
    limits?: TransactionLimits,
  ): Promise<TransactionalClaimResult<EntityManager>> {
    const statementTimeoutMs = limits?.statementTimeoutMs ?? 0;
    const opening = openTransaction(this.beginText(), statementTimeoutMs);
    const queryRunner = this.dataSource.createQueryRunner('master');
    let claimed = false;
    try {
      const client = (await queryRunner.connect()) as PoolClient;
      await transactionStarting(queryRunner);
      for (let attempt = 0; attempt < CLAIM_ATTEMPTS; attempt++) {
        const token = randomUUID();
        // The first attempt opens the transaction in the same round trip.
        const claim = this.layout.claimInTransaction(request, token, attempt === 0 ? opening : []);
        const results = await runPipeline(client, claim.statements);
        if (attempt === 0) {
          await transactionStarted(queryRunner);
        }
        const row = results[claim.at].rows[0] as ClaimRow | undefined;
        if (row?.outcome === 'claimed') {
          claimed = true;
          const handle = claimHandle(request, token, row);
          return {
            kind: 'claimed',
            transaction: new PostgresIdempotencyTransaction(
              handle,
              request,
              queryRunner,
              client,
              this.layout,
              this.beginText(),
              limits && statementTimeoutMs > 0 ? statementTimeoutMs + limits.graceMs : null,
            ),
          };
        }
        if (row?.outcome === 'busy') {
          return { kind: 'busy' };
        }
        const decision = row ? decideRow(row, request) : { kind: 'retry' as const };
        if (decision.kind !== 'retry') {
          return decision;
        }
      }
      return { kind: 'busy' };
    } catch (error) {
      throw this.layout.explain(error);
    } finally {
      if (!claimed) {
        this.abandon(queryRunner);
      }
    }
  }

  /**
   * Ends a transaction that claimed nothing, without waiting for it: the ROLLBACK is queued on the
   * connection before it goes back to the pool, so whoever takes the connection next runs after
   * it. Whatever the ROLLBACK meets (a dead connection) is the pool's to handle, as for any query.
   * This relies on node-postgres 8 queueing a query behind one in flight, which it announces it
   * will stop doing in pg 9: revisit with the peer dependency's next major.
   */
  private abandon(queryRunner: QueryRunner): void {
    const client = (queryRunner as unknown as { databaseConnection?: PoolClient })
      .databaseConnection;
    if (client && queryRunner.isTransactionActive) {
      client.query('ROLLBACK').catch(() => undefined);
    }
    transactionAbandoned(queryRunner);
    queryRunner.release().catch(() => undefined);
  }

  private beginText(): string {
    this.begin ??= this.layout.begin();
    return this.begin;
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
    const { rows, rowCount } = await this.runPlanned<{ expires_at_ms: string }>(
      this.layout.markNotReplayable(handle, status, ttlMs),
    );
    if (rows[0]) {
      // The row may have moved to another partition: the next write of this claim looks there.
      handle.location = rows[0].expires_at_ms;
    }
    return rowCount === 1;
  }

  async release(handle: ClaimHandle): Promise<boolean> {
    const { rowCount } = await this.runPlanned(this.layout.release(handle));
    return rowCount === 1;
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
      if (planned.statements.length === 1) {
        const [{ name, text, values }] = planned.statements;
        const { rows, rowCount } = await this.pool().query<R>({
          name,
          text,
          values: values as unknown[] | undefined,
        });
        return { rows, rowCount: rowCount ?? 0 };
      }
      return await this.pipelineOnPool<R>(planned);
    } catch (error) {
      throw this.layout.explain(error);
    }
  }

  private async pipelineOnPool<R extends QueryResultRow>(
    planned: Planned,
  ): Promise<PipelineResult<R>> {
    const client = await this.pool().connect();
    // The key's lock must be held from its statement to the write's commit.
    const plan =
      planned.implicitTransaction && !sendsOneSync(client)
        ? inExplicitTransaction(planned)
        : planned;
    let results: PipelineResult[];
    try {
      results = await runPipeline(client, plan.statements);
    } catch (error) {
      if (plan.implicitTransaction) {
        // PostgreSQL rolled the implicit transaction back at the Sync; a connection that failed
        // without a SQLSTATE is dropped.
        client.release(serverAnswered(error) ? undefined : new Error(String(error)));
      } else {
        // A failed statement leaves an explicit transaction open and aborted: end it before the
        // connection is reused, or drop the connection.
        await client.query('ROLLBACK').then(
          () => client.release(),
          (rollbackError: Error) => client.release(rollbackError),
        );
      }
      throw error;
    }
    client.release();
    return results[plan.at] as PipelineResult<R>;
  }

  private pool(): Pool {
    // TypeORM's PostgresDriver keeps its pg pool as `master`; it is typed `any` there.
    const pool = (this.dataSource.driver as unknown as { master?: Pool }).master;
    if (!pool) {
      throw new Error('nestjs-idempotency: the DataSource is not initialized (no pg pool).');
    }
    return pool;
  }
}

/** Whether PostgreSQL itself raised `error` (a SQLSTATE), so the connection is still sound. */
function serverAnswered(error: unknown): boolean {
  return error instanceof PipelineError && /^[0-9A-Z]{5}$/.test(error.code ?? '');
}

function claimHandle(request: ClaimRequest, token: string, row: ClaimRow): ClaimHandle {
  const handle: ClaimHandle = { scope: request.scope, key: request.key, token };
  if (row.claimed_expires_at_ms !== undefined && row.claimed_expires_at_ms !== null) {
    handle.location = row.claimed_expires_at_ms;
  }
  return handle;
}

function decideRow(row: ClaimRow, request: ClaimRequest): Decided {
  return decideExistingKey(
    {
      state: row.state ?? 'in_flight',
      fingerprint: row.fingerprint,
      leaseLeftMs: row.lease_left_ms ?? 0,
      status: row.response_status,
      response:
        row.state === 'completed' && row.response_status !== null
          ? {
              status: row.response_status,
              headers: parseHeaders(row.response_headers),
              body: row.response_body,
            }
          : null,
    },
    request.fingerprint,
  );
}

function parseHeaders(text: string | null): Record<string, string> {
  return text ? (JSON.parse(text) as Record<string, string>) : {};
}

import type { ClaimHandle, ClaimRequest } from '../../store/claim-result.interface';
import type {
  IdempotencyHealthQuery,
  IdempotencyStoreHealth,
} from '../../store/idempotency-store-health.interface';
import type { RecordedStep } from '../../store/recovery-points.interface';
import type { StoredResponse } from '../../store/stored-response.interface';
import type { PipelineStatement } from '../driver/pipelined-query';
import { expiredCountSql } from '../sql/health.sql';
import { type IdempotencyStatements, idempotencyStatements } from '../sql/idempotency.sql';
import { type HealthReads, readOldestInFlight } from './health-reads';
import {
  type Planned,
  claimValues,
  notReplayableValues,
  responseValues,
  stepValues,
  stepsOnly,
} from './planned';
import type { IdempotencyTableLayout, TableLayoutContext } from './table-layout';
import { assertStepsColumn, readTableShape } from './table-shape';

/**
 * One ordinary table, one row per key under a unique index: every lease-mode operation is a
 * single autocommitted statement, and expired rows are deleted in batches.
 */
export class SingleTableLayout implements IdempotencyTableLayout {
  readonly namePrefix: string;
  readonly lookup: string;
  readonly inTransaction: { complete: string; markNotReplayable: string };
  private readonly sql: IdempotencyStatements;

  constructor(private readonly context: TableLayoutContext) {
    this.sql = idempotencyStatements(context.table, context.recoveryPoints);
    this.namePrefix = this.sql.namePrefix;
    this.lookup = this.sql.lookup;
    this.inTransaction = {
      complete: this.sql.completeInTransaction,
      markNotReplayable: this.sql.markNotReplayableInTransaction,
    };
  }

  /**
   * This layout's claim cannot work on a partitioned table (every claim would answer 503), so a
   * configuration that forgot `partitioning` stops at start-up instead. A table that does not
   * exist yet is left to the claims to report.
   */
  async prepare(): Promise<void> {
    const { table } = this.context;
    const shape = await readTableShape(this.context.pool(), table);
    const { kind, leaf } = shape;
    if (kind === 'p') {
      throw new Error(
        `nestjs-idempotency: ${table} is partitioned; set the partitioning option for it.`,
      );
    }
    // The old table after a migration: its keys are served through the partitioned table now.
    if (leaf) {
      throw new Error(
        `nestjs-idempotency: ${table} is a partition of another table; configure that table (with partitioning) instead.`,
      );
    }
    if (this.context.recoveryPoints) {
      assertStepsColumn(table, shape);
    }
  }

  begin(): string {
    return this.context.begin();
  }

  claim(request: ClaimRequest, token: string): Planned {
    return this.one('claim', this.sql.claim, claimValues(request, token));
  }

  complete(handle: ClaimHandle, response: StoredResponse, ttlMs: number): Planned {
    const values = responseValues(handle, handle.token, response, ttlMs);
    return this.one('complete', this.sql.complete, values);
  }

  markNotReplayable(handle: ClaimHandle, status: number | null, ttlMs: number): Planned {
    const values = notReplayableValues(handle, status, ttlMs);
    return this.one('not_replayable', this.sql.markNotReplayable, values);
  }

  release(handle: ClaimHandle): Planned {
    return this.one('release', this.sql.release, [handle.scope, handle.key, handle.token]);
  }

  saveStep(handle: ClaimHandle, index: number, step: RecordedStep, leaseMs: number): Planned {
    return this.one(
      'save_step',
      stepsOnly(this.sql.saveStep),
      stepValues(handle, index, step, leaseMs),
    );
  }

  stepInTransaction(
    handle: ClaimHandle,
    index: number,
    step: RecordedStep,
    leaseMs: number,
  ): PipelineStatement[] {
    return this.saveStep(handle, index, step, leaseMs).statements;
  }

  stepIsolation(): string | undefined {
    return undefined;
  }

  claimInTransaction(
    request: ClaimRequest,
    token: string,
    opening: readonly PipelineStatement[],
  ): Planned {
    const claim = {
      name: `${this.namePrefix}_claim_in_transaction`,
      text: this.sql.transactionalClaim,
      values: claimValues(request, token),
    };
    return { statements: [...opening, claim], at: opening.length };
  }

  transactionalTtlMs(_claimTtlMs: number, ttlMs: number): number {
    return ttlMs;
  }

  explain(error: unknown): unknown {
    return error;
  }

  maintain(): Promise<void> {
    return Promise.resolve();
  }

  maintenanceIntervalMs(): number {
    return 0;
  }

  /** Deletes up to `batchSize` expired rows; returns how many. */
  async purgeExpired(batchSize: number): Promise<number> {
    const { rowCount } = await this.context.pool().query({
      name: `${this.namePrefix}_purge`,
      text: this.sql.purge,
      values: [batchSize],
    });
    return rowCount ?? 0;
  }

  /**
   * The expired rows the purge has yet to delete, counted up to the query's limit through the
   * `expires_at` index; with the query's `oldestInFlight`, the oldest in-flight row's age.
   */
  async health(reads: HealthReads, query: IdempotencyHealthQuery): Promise<IdempotencyStoreHealth> {
    const limit = query.purgeBacklogLimit;
    const expired = await reads.read(
      async (client) =>
        (await client.query<{ expired: number }>(expiredCountSql(this.context.table), [limit]))
          .rows[0].expired,
    );
    const health: IdempotencyStoreHealth = {
      kind: 'postgres',
      purgeBacklog: expired ?? 'unknown',
    };
    if (expired !== undefined) {
      health.purgeBacklogCapped = expired >= limit;
    }
    if (query.oldestInFlight) {
      health.oldestInFlightAgeMs = await readOldestInFlight(reads, this.context.table);
    }
    return health;
  }

  private one(name: string, text: string, values: PipelineStatement['values']): Planned {
    return { statements: [{ name: `${this.namePrefix}_${name}`, text, values }], at: 0 };
  }
}

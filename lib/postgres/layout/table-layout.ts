import type { Pool } from 'pg';
import type { ClaimHandle, ClaimRequest } from '../../store/claim-result.interface';
import type {
  IdempotencyHealthQuery,
  IdempotencyStoreHealth,
} from '../../store/idempotency-store-health.interface';
import type { RecordedStep } from '../../store/recovery-points.interface';
import type { StoredResponse } from '../../store/stored-response.interface';
import type { PipelineStatement } from '../driver/pipelined-query';
import type { HealthReads } from './health-reads';
import type { Planned } from './planned';

/**
 * How the store's rows are laid out in PostgreSQL: what each operation sends, and what the table
 * needs to stay usable. The store runs the statements; a layout decides them. Two exist: one
 * ordinary table (a unique index keeps one row per key) and a table partitioned by expiry (a
 * per-key lock does, and expired partitions are dropped whole).
 */
export interface IdempotencyTableLayout {
  /** Prefix of the prepared statements' names, unique per table. */
  readonly namePrefix: string;
  /** $1 scope, $2 key: the key's live row without claiming it, and whether its lock is free. */
  readonly lookup: string;

  /** Checks at start-up that the table has this layout, and readies it (partitions ahead). */
  prepare(): Promise<void>;
  /** The statement that opens a transactional request's transaction. */
  begin(): string;

  /** Lease mode: the claim of `request` under `token`. */
  claim(request: ClaimRequest, token: string): Planned;
  /** Lease mode: stores `response` in the claim's row. */
  complete(handle: ClaimHandle, response: StoredResponse, ttlMs: number): Planned;
  /** Lease mode: marks the claim's row as executed but not replayable. */
  markNotReplayable(handle: ClaimHandle, status: number | null, ttlMs: number): Planned;
  /**
   * Lease mode: deletes the claim's row unless it completed (with recovery points, keeps a row in
   * flight that holds steps; see `IdempotencyRecoveryPoints`).
   */
  release(handle: ClaimHandle): Planned;
  /**
   * Lease mode, with recovery points: records the claim's `index`-th step and renews its lease.
   * On a partitioned table it returns the row's new expiry (`expires_at_ms`), which names its
   * partition.
   */
  saveStep(handle: ClaimHandle, index: number, step: RecordedStep, leaseMs: number): Planned;
  /**
   * With recovery points: the statements that record a step inside the open transaction of its
   * writes (opened at `stepIsolation`), the last one the step's write.
   */
  stepInTransaction(
    handle: ClaimHandle,
    index: number,
    step: RecordedStep,
    leaseMs: number,
  ): PipelineStatement[];
  /** The isolation level a step's transaction must have, or `undefined` for the application's. */
  stepIsolation(): string | undefined;

  /**
   * Transactional mode: the claim of `request` under `token` inside the caller's transaction,
   * after `opening` (what opens the transaction in the same round trip; none when it is open).
   */
  claimInTransaction(
    request: ClaimRequest,
    token: string,
    opening: readonly PipelineStatement[],
  ): Planned;
  /**
   * Transactional mode: the texts of the writes of the claimed row inside its transaction, each
   * failing without the row (see `completionInTransaction` and `notReplayableInTransaction`).
   */
  readonly inTransaction: { complete: string; markNotReplayable: string };
  /** The TTL a transactional write must use, from the claim's TTL and the one asked for. */
  transactionalTtlMs(claimTtlMs: number, ttlMs: number): number;

  /** An error of this layout's statements, said in terms of what to change (or as it is). */
  explain(error: unknown): unknown;

  /** Upkeep while the application runs (partitions ahead); see `IdempotencyStore.maintain`. */
  maintain(): Promise<void>;
  /** How often `maintain` must run, in milliseconds; 0 for never. */
  maintenanceIntervalMs(): number;
  /** See `IdempotencyStore.purgeExpired`. */
  purgeExpired(batchSize: number): Promise<number>;
  /** What a health check reports of this layout's table, through `reads` (each bounded). */
  health(reads: HealthReads, query: IdempotencyHealthQuery): Promise<IdempotencyStoreHealth>;
}

/** What a layout works on. */
export interface TableLayoutContext {
  /** The table, validated as an identifier by the layout's statements. */
  table: string;
  /** The BEGIN of a transactional request (with the isolation level its transactions use). */
  begin: () => string;
  /**
   * The isolation level the application configured for its transactions, upper case, or
   * `undefined` for the server's default.
   */
  isolationLevel: () => string | undefined;
  /** The pg pool, read when used (an ORM's pool may be created after the store is built). */
  pool: () => Pool;
  /**
   * Whether claims keep their steps (the module records steps): the statements then use the
   * table's `steps` column, which `prepare` requires.
   */
  recoveryPoints: boolean;
}

import type { ClaimHandle, ClaimRequest } from '../../store/claim-result.interface';
import type {
  IdempotencyHealthQuery,
  IdempotencyStoreHealth,
} from '../../store/idempotency-store-health.interface';
import type { RecordedStep } from '../../store/recovery-points.interface';
import type { StoredResponse } from '../../store/stored-response.interface';
import type { PipelineStatement } from '../driver/pipelined-query';
import { idempotencyStatements } from '../sql/idempotency.sql';
import {
  BEGIN_READ_COMMITTED,
  type PartitionedStatements,
  partitionedStatements,
} from '../sql/partitioned-idempotency.sql';
import { type IdempotencyPartitioning, IdempotencyPartitions } from './idempotency-partitions';
import {
  type Planned,
  claimValues,
  inExplicitTransaction,
  notReplayableValues,
  responseValues,
  stepValues,
  stepsOnly,
} from './planned';
import type { IdempotencyTableLayout, TableLayoutContext } from './table-layout';
import { type HealthReads, readOldestInFlight } from './health-reads';
import { assertStepsColumn } from './table-shape';

type KeyOf = Pick<ClaimHandle, 'scope' | 'key'>;

/**
 * A table partitioned by expiry (see docs/partitioning.md), for tables too large to purge row by
 * row. PostgreSQL keeps no unique (scope, key) index across partitions, so every write of a key
 * first takes the key's lock, in the same READ COMMITTED transaction; later writes of a claim name
 * its partition (the handle's `location`, the row's expiry). Partitions are created ahead by
 * `maintain` and dropped whole by `purgeExpired` once every row in them has expired.
 */
export class PartitionedTableLayout implements IdempotencyTableLayout {
  readonly namePrefix: string;
  readonly lookup: string;
  readonly inTransaction: { complete: string; markNotReplayable: string };
  private readonly sql: PartitionedStatements;
  private readonly partitions: IdempotencyPartitions;
  /** The server's default_transaction_isolation, read at start-up. */
  private defaultIsolation: string | undefined;
  /**
   * Whether that default is READ COMMITTED: lease-mode writes then run in the implicit transaction
   * of their pipeline, without BEGIN and COMMIT.
   */
  private readCommittedByDefault = false;

  constructor(
    private readonly context: TableLayoutContext,
    private readonly partitioning: IdempotencyPartitioning,
  ) {
    this.sql = partitionedStatements(context.table, context.recoveryPoints);
    // The lookup reads live rows only, which the ordinary table's statement does on either layout.
    const ordinary = idempotencyStatements(context.table, context.recoveryPoints);
    this.namePrefix = ordinary.namePrefix;
    this.lookup = ordinary.lookup;
    this.inTransaction = {
      complete: this.sql.completeInTransaction,
      markNotReplayable: this.sql.markNotReplayableInTransaction,
    };
    this.partitions = new IdempotencyPartitions(context.pool, context.table, partitioning);
  }

  /** Checks that the table is partitioned by expiry, and creates the partitions ahead. */
  async prepare(): Promise<void> {
    const shape = await this.partitions.prepare();
    if (this.context.recoveryPoints) {
      assertStepsColumn(this.context.table, shape);
    }
    const { defaultIsolation } = shape;
    this.defaultIsolation = defaultIsolation;
    this.readCommittedByDefault = defaultIsolation === 'read committed';
  }

  begin(): string {
    return readCommittedOnly(this.context.isolationLevel(), this.defaultIsolation);
  }

  claim(request: ClaimRequest, token: string): Planned {
    return this.locked(request, {
      name: `${this.namePrefix}_claim`,
      text: this.sql.claim,
      values: claimValues(request, token),
    });
  }

  complete(handle: ClaimHandle, response: StoredResponse, ttlMs: number): Planned {
    return this.locked(handle, {
      name: `${this.namePrefix}_complete`,
      text: this.sql.complete,
      values: [...responseValues(handle, handle.token, response, ttlMs), location(handle)],
    });
  }

  /** Returns the row's new expiry: the row moves partition, and later writes look there. */
  markNotReplayable(handle: ClaimHandle, status: number | null, ttlMs: number): Planned {
    return this.locked(handle, {
      name: `${this.namePrefix}_not_replayable`,
      text: this.sql.markNotReplayable,
      values: [...notReplayableValues(handle, status, ttlMs), location(handle)],
    });
  }

  release(handle: ClaimHandle): Planned {
    return this.locked(handle, {
      name: `${this.namePrefix}_release`,
      text: this.sql.release,
      values: [handle.scope, handle.key, handle.token],
    });
  }

  /** Returns the row's new expiry: a step moves it, and with it the row's partition. */
  saveStep(handle: ClaimHandle, index: number, step: RecordedStep, leaseMs: number): Planned {
    return this.locked(handle, this.stepInTransaction(handle, index, step, leaseMs)[1]);
  }

  /** The key's lock, then the step's write: the lock comes before the write's snapshot. */
  stepInTransaction(
    handle: ClaimHandle,
    index: number,
    step: RecordedStep,
    leaseMs: number,
  ): PipelineStatement[] {
    return [
      this.keyLock(this.sql.lockKey, 'key_lock', handle),
      {
        name: `${this.namePrefix}_save_step`,
        text: stepsOnly(this.sql.saveStep),
        values: [...stepValues(handle, index, step, leaseMs), location(handle)],
      },
    ];
  }

  /** Each statement after the key's lock must see what its previous holder committed. */
  stepIsolation(): string {
    return 'READ COMMITTED';
  }

  claimInTransaction(
    request: ClaimRequest,
    token: string,
    opening: readonly PipelineStatement[],
  ): Planned {
    const statements: PipelineStatement[] = [
      ...opening,
      this.keyLock(this.sql.tryLockKey, 'try_key_lock', request),
      {
        name: `${this.namePrefix}_claim_in_transaction`,
        text: this.sql.transactionalClaim,
        values: claimValues(request, token),
      },
    ];
    return { statements, at: statements.length - 1 };
  }

  /**
   * A transactional write finds the row by the expiry its claim wrote, from the claim's TTL (the
   * same value in practice): another would miss the row and fail the commit.
   */
  transactionalTtlMs(claimTtlMs: number): number {
    return claimTtlMs;
  }

  explain(error: unknown): unknown {
    return explainPartitionError(error);
  }

  /** Creates the partitions that claims of the next `aheadMs` write into. */
  maintain(): Promise<void> {
    return this.partitions.createAhead();
  }

  maintenanceIntervalMs(): number {
    return this.partitioning.maintenanceIntervalMs;
  }

  /**
   * Drops the partitions whose rows have all expired, whatever `batchSize`, and returns their
   * estimated row count.
   */
  purgeExpired(): Promise<number> {
    return this.partitions.dropExpired();
  }

  /**
   * From the catalog alone: how far the partitions reach (short of what claims made now need is
   * a problem: those claims fail), and the expired partitions waiting to be dropped, with their
   * estimated rows as the purge backlog. With the query's `oldestInFlight`, the oldest in-flight
   * row's age (partitions whose range has passed are pruned from that read).
   */
  async health(reads: HealthReads, query: IdempotencyHealthQuery): Promise<IdempotencyStoreHealth> {
    const coverage = await reads.read((client) => this.partitions.coverage(client));
    const health: IdempotencyStoreHealth = {
      kind: 'postgres',
      purgeBacklog: coverage?.expiredRowsEstimate ?? 'unknown',
    };
    if (coverage) {
      const neededMs = this.partitioning.claimReachMs;
      health.expiredPartitions = coverage.expiredPartitions;
      health.partitionsAheadMs = coverage.aheadMs;
      health.partitionsNeededAheadMs = neededMs;
      if (coverage.aheadMs < neededMs) {
        health.problems = [
          `Partitions of ${this.context.table} reach ${coverage.aheadMs} ms ahead, short of the ${neededMs} ms that claims made now need: those claims fail. Is the maintenance running?`,
        ];
      }
    }
    if (query.oldestInFlight) {
      health.oldestInFlightAgeMs = await readOldestInFlight(reads, this.context.table);
    }
    return health;
  }

  /** `statement` in the key's locked transaction (see Planned). */
  private locked(of: KeyOf, statement: PipelineStatement): Planned {
    const lock = this.keyLock(this.sql.lockKey, 'key_lock', of);
    const implicit: Planned = { statements: [lock, statement], at: 1, implicitTransaction: true };
    return this.readCommittedByDefault ? implicit : inExplicitTransaction(implicit);
  }

  private keyLock(text: string, name: string, of: KeyOf): PipelineStatement {
    return { name: `${this.namePrefix}_${name}`, text, values: [of.scope, of.key] };
  }
}

/** The claim's partition, as a parameter: the row's expiry in epoch milliseconds. */
function location(handle: ClaimHandle): string {
  if (handle.location === undefined) {
    throw new Error('nestjs-idempotency: a claim on a partitioned table carries its expiry.');
  }
  return handle.location;
}

/**
 * The key lock must be taken before the transaction's snapshot, which READ COMMITTED takes per
 * statement; under REPEATABLE READ or SERIALIZABLE the snapshot of the first statement would miss
 * a row committed while the claim waited for the lock. Handlers written for a stricter level (the
 * application's, or the server's default) are refused rather than silently run in READ COMMITTED.
 */
function readCommittedOnly(
  configured: string | undefined,
  serverDefault: string | undefined,
): string {
  const level = configured ?? serverDefault?.toUpperCase();
  if (level !== undefined && level !== 'READ COMMITTED') {
    throw new Error(
      `nestjs-idempotency: transactional routes on a partitioned idempotency table run in READ COMMITTED, but the ${configured ? 'configured' : "database's default"} isolation level is ${level}.`,
    );
  }
  return BEGIN_READ_COMMITTED;
}

/**
 * Errors of a lease-mode write on a partitioned table, said in terms of what to change: a claim
 * whose expiry lies past the last partition fails with "no partition of relation ... found for
 * row" (23514); the key lock's guard fails (22012) outside READ COMMITTED.
 */
export function explainPartitionError(error: unknown): unknown {
  const { code, message, cause } = (error ?? {}) as {
    code?: unknown;
    message?: unknown;
    cause?: { routine?: unknown };
  };
  // The routine names the failure whatever the server's language (a PipelineError keeps the
  // server's error as its cause).
  const routine = cause?.routine ?? (error as { routine?: unknown } | null)?.routine;
  if (code === '22012') {
    return new Error(
      'nestjs-idempotency: a partitioned idempotency table needs READ COMMITTED transactions, and this one was not (the database default_transaction_isolation changed after start-up?).',
      { cause: error },
    );
  }
  if (
    code === '23514' &&
    (routine === 'ExecFindPartition' ||
      (typeof message === 'string' && message.includes('no partition')))
  ) {
    return new Error(
      "nestjs-idempotency: no partition of the idempotency table covers this key's expiry. Partitions are created partitioning.aheadMs ahead, which must exceed every route's ttlMs + lockTimeoutMs; check that maintenance runs (partitioning.maintenanceIntervalMs).",
      { cause: error },
    );
  }
  return error;
}

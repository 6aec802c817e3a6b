import { randomUUID } from 'node:crypto';
import type { Pool, PoolClient, QueryConfig, QueryResultRow } from 'pg';
import type { DataSource, QueryRunner } from 'typeorm';
import { decideExistingKey } from '../../protocol/claim-decision';
import type { ClaimHandle, ClaimRequest, ClaimResult } from '../claim-result.interface';
import type { StoredResponse } from '../stored-response.interface';
import {
  TransactionalIdempotencyStore,
  type TransactionalClaimResult,
  type TransactionalLookupResult,
} from '../transactional-idempotency-store';
import {
  type IdempotencyStatements,
  claimValues,
  idempotencyStatements,
  transactionalClaimStatement,
} from './idempotency.sql';
import { type PipelineStatement, runPipeline } from './pipelined-query';
import { PostgresIdempotencyTransaction } from './postgres-idempotency.transaction';
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
}

type Decided = Exclude<ClaimResult, { kind: 'claimed' }> | { kind: 'retry' };

/**
 * The default store: one PostgreSQL table, reached through the pg pool of the application's
 * TypeORM `DataSource` (its size and connection settings are the DataSource's). Statements are
 * prepared and sent on the pool directly: no ORM query building on the hot path. It also runs
 * transactional mode, on a query runner of the same DataSource.
 */
export class PostgresIdempotencyStore extends TransactionalIdempotencyStore {
  private readonly sql: IdempotencyStatements;
  private begin: string | undefined;

  /**
   * @param dataSource an initialised TypeORM DataSource on PostgreSQL (its pool is borrowed).
   * @param tableName the idempotency table, optionally schema-qualified. Default:
   *   `idempotency_records`.
   */
  constructor(
    private readonly dataSource: DataSource,
    tableName?: string,
  ) {
    super();
    this.sql = idempotencyStatements(tableName);
  }

  async claim(request: ClaimRequest): Promise<ClaimResult> {
    for (let attempt = 0; attempt < CLAIM_ATTEMPTS; attempt++) {
      const token = randomUUID();
      const { rows } = await this.run<ClaimRow>({
        name: `${this.sql.namePrefix}_claim`,
        text: this.sql.claim,
        values: claimValues(request, token),
      });
      const row = rows[0];
      if (row?.outcome === 'claimed') {
        return { kind: 'claimed', handle: { scope: request.scope, key: request.key, token } };
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
    const { rows } = await this.run<ClaimRow & { free: boolean }>({
      name: `${this.sql.namePrefix}_lookup`,
      text: this.sql.lookup,
      values: [request.scope, request.key],
    });
    const row = rows[0];
    const decision = row.outcome === 'existing' ? decideRow(row, request) : null;
    if (decision !== null && decision.kind !== 'retry') {
      return decision;
    }
    return row.free ? null : { kind: 'busy' };
  }

  async claimInTransaction(request: ClaimRequest): Promise<TransactionalClaimResult> {
    const queryRunner = this.dataSource.createQueryRunner('master');
    let claimed = false;
    try {
      const client = (await queryRunner.connect()) as PoolClient;
      await transactionStarting(queryRunner);
      for (let attempt = 0; attempt < CLAIM_ATTEMPTS; attempt++) {
        const token = randomUUID();
        const claim = transactionalClaimStatement(this.sql, request, token);
        // The first attempt opens the transaction in the same round trip.
        const rows =
          attempt === 0
            ? await this.beginWith(queryRunner, client, claim)
            : ((await runPipeline(client, [claim]))[0].rows as ClaimRow[]);
        const row = rows[0];
        if (row?.outcome === 'claimed') {
          claimed = true;
          const handle = { scope: request.scope, key: request.key, token };
          return {
            kind: 'claimed',
            transaction: new PostgresIdempotencyTransaction(
              handle,
              request,
              queryRunner,
              client,
              this.sql,
              this.beginText(),
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

  private async beginWith(
    queryRunner: QueryRunner,
    client: PoolClient,
    claim: PipelineStatement,
  ): Promise<ClaimRow[]> {
    const [, claimed] = await runPipeline(client, [{ text: this.beginText() }, claim]);
    await transactionStarted(queryRunner);
    return claimed.rows as ClaimRow[];
  }

  private beginText(): string {
    this.begin ??= beginStatement(this.dataSource);
    return this.begin;
  }

  async complete(handle: ClaimHandle, response: StoredResponse, ttlMs: number): Promise<boolean> {
    const { rowCount } = await this.run({
      name: `${this.sql.namePrefix}_complete`,
      text: this.sql.complete,
      values: [
        handle.scope,
        handle.key,
        handle.token,
        response.status,
        JSON.stringify(response.headers),
        response.body,
        ttlMs,
      ],
    });
    return rowCount === 1;
  }

  async markNotReplayable(
    handle: ClaimHandle,
    status: number | null,
    ttlMs: number,
  ): Promise<boolean> {
    const { rowCount } = await this.run({
      name: `${this.sql.namePrefix}_not_replayable`,
      text: this.sql.markNotReplayable,
      values: [handle.scope, handle.key, handle.token, status, ttlMs],
    });
    return rowCount === 1;
  }

  async release(handle: ClaimHandle): Promise<boolean> {
    const { rowCount } = await this.run({
      name: `${this.sql.namePrefix}_release`,
      text: this.sql.release,
      values: [handle.scope, handle.key, handle.token],
    });
    return rowCount === 1;
  }

  async purgeExpired(batchSize: number): Promise<number> {
    const { rowCount } = await this.run({
      name: `${this.sql.namePrefix}_purge`,
      text: this.sql.purge,
      values: [batchSize],
    });
    return rowCount ?? 0;
  }

  private run<R extends QueryResultRow = QueryResultRow>(query: QueryConfig) {
    return this.pool().query<R>(query);
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

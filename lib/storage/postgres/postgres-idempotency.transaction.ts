import type { PoolClient, QueryConfig } from 'pg';
import type { EntityManager, QueryRunner } from 'typeorm';
import type { ClaimHandle } from '../claim-result.interface';
import type { StoredResponse } from '../stored-response.interface';
import {
  HandlerTransactionAbortedError,
  type IdempotencyTransactionHandle,
} from '../transactional-idempotency-store';
import type { IdempotencyStatements } from './idempotency.sql';

const SAVEPOINT = 'nestjs_idempotency_handler';

/**
 * A claim held inside an open TypeORM transaction. The store's own statements go to the
 * transaction's pg client as prepared statements; the handler uses `manager`, bound to the same
 * query runner, so everything shares one connection and one commit.
 */
export class PostgresIdempotencyTransaction implements IdempotencyTransactionHandle {
  private finished = false;

  constructor(
    readonly handle: ClaimHandle,
    private readonly queryRunner: QueryRunner,
    private readonly client: PoolClient,
    private readonly sql: IdempotencyStatements,
  ) {}

  get manager(): EntityManager {
    return this.queryRunner.manager;
  }

  async savepoint(): Promise<void> {
    await this.client.query(`SAVEPOINT ${SAVEPOINT}`);
  }

  async rollbackToSavepoint(): Promise<void> {
    await this.client.query(`ROLLBACK TO SAVEPOINT ${SAVEPOINT}`);
  }

  async complete(response: StoredResponse, ttlMs: number): Promise<void> {
    try {
      await this.writeResponse(response, ttlMs);
    } catch (error) {
      if (!isAbortedTransaction(error)) {
        throw error;
      }
      if (response.status < 400) {
        throw new HandlerTransactionAbortedError(response.status);
      }
      await this.rollbackToSavepoint();
      await this.writeResponse(response, ttlMs);
    }
  }

  private async writeResponse(response: StoredResponse, ttlMs: number): Promise<void> {
    await this.expectOneRow({
      name: `${this.sql.namePrefix}_complete`,
      text: this.sql.complete,
      values: [
        this.handle.scope,
        this.handle.key,
        this.handle.token,
        response.status,
        JSON.stringify(response.headers),
        response.body,
        ttlMs,
      ],
    });
  }

  async markNotReplayable(status: number | null, ttlMs: number): Promise<void> {
    await this.expectOneRow({
      name: `${this.sql.namePrefix}_not_replayable`,
      text: this.sql.markNotReplayable,
      values: [this.handle.scope, this.handle.key, this.handle.token, status, ttlMs],
    });
  }

  async commit(): Promise<void> {
    this.finished = true;
    try {
      await this.queryRunner.commitTransaction();
    } finally {
      await this.queryRunner.release();
    }
  }

  async rollback(): Promise<void> {
    if (this.finished) {
      return;
    }
    this.finished = true;
    try {
      if (this.queryRunner.isTransactionActive) {
        await this.queryRunner.rollbackTransaction();
      }
    } catch {
      // A broken connection rolls the transaction back by itself.
    } finally {
      await this.queryRunner.release().catch(() => undefined);
    }
  }

  isConnectionFailure(error: unknown): boolean {
    return isConnectionFailure(error);
  }

  private async expectOneRow(query: QueryConfig): Promise<void> {
    const { rowCount } = await this.client.query(query);
    if (rowCount !== 1) {
      // The claim row was written in this very transaction: not finding it means the handler
      // deleted or rolled it back (for example with its own ROLLBACK).
      throw new Error('nestjs-idempotency: the claim vanished from its own transaction.');
    }
  }
}

/** PostgreSQL's "current transaction is aborted, commands ignored until end of block". */
function isAbortedTransaction(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === '25P02';
}

/**
 * SQLSTATE classes and driver messages that mean the connection, not the statement, failed:
 * 08 (connection exception), 57P01-57P03 (server shutting down or not accepting), and what pg
 * and TypeORM raise when the socket is gone.
 */
const CONNECTION_FAILURE_MESSAGE =
  /Connection terminated|Client has encountered a connection error|Query runner already released|ECONNRESET|ECONNREFUSED|EPIPE/i;

function isConnectionFailure(error: unknown): boolean {
  for (let current = error, depth = 0; current && depth < 4; depth++) {
    const { code, message, driverError } = current as {
      code?: unknown;
      message?: unknown;
      driverError?: unknown;
    };
    if (typeof code === 'string' && (code.startsWith('08') || /^57P0[123]$/.test(code))) {
      return true;
    }
    if (typeof message === 'string' && CONNECTION_FAILURE_MESSAGE.test(message)) {
      return true;
    }
    current = driverError;
  }
  return false;
}

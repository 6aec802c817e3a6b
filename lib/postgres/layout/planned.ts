import type { ClaimHandle, ClaimRequest } from '../../store/claim-result.interface';
import type { RecordedStep } from '../../store/recovery-points.interface';
import type { StoredResponse } from '../../store/stored-response.interface';
import type { PipelineStatement, PipelineValue } from '../driver/pipelined-query';
import { BEGIN_READ_COMMITTED } from '../sql/partitioned-idempotency.sql';

/**
 * The statements of one store operation, sent in one round trip, and which of them answers it.
 * On the single table an operation is one autocommitted statement; on a partitioned table it is
 * preceded by the key's lock, in one READ COMMITTED transaction: the pipeline's implicit one (the
 * statements before its Sync commit together) when that is the server's default, else an explicit
 * BEGIN ... COMMIT.
 */
export interface Planned {
  statements: PipelineStatement[];
  /** Index of the statement whose rows are the operation's result. */
  at: number;
  /**
   * The statements rely on sharing the implicit transaction of one Sync (the key's lock is held
   * until it). Where they cannot (see sendsOneSync), `inExplicitTransaction` wraps them.
   */
  implicitTransaction?: boolean;
}

/** `planned` in a READ COMMITTED transaction of its own, for a client that cannot share a Sync. */
export function inExplicitTransaction(planned: Planned): Planned {
  return {
    statements: [{ text: BEGIN_READ_COMMITTED }, ...planned.statements, { text: 'COMMIT' }],
    at: planned.at + 1,
  };
}

/** $1 scope, $2 key, $3 fingerprint, $4 token, $5 lease ms, $6 ttl ms. */
export function claimValues(request: ClaimRequest, token: string): PipelineValue[] {
  return [
    request.scope,
    request.key,
    request.fingerprint,
    token,
    String(request.lockTimeoutMs),
    String(request.ttlMs),
  ];
}

/** $1 scope, $2 key, $3 token, $4 status, $5 headers JSON, $6 body, $7 ttl ms. */
export function responseValues(
  handle: ClaimHandle,
  token: string,
  response: StoredResponse,
  ttlMs: number,
): PipelineValue[] {
  return [
    handle.scope,
    handle.key,
    token,
    String(response.status),
    JSON.stringify(response.headers),
    response.body,
    String(ttlMs),
  ];
}

/** $1 scope, $2 key, $3 token, $4 status (null while unknown), $5 ttl ms. */
export function notReplayableValues(
  handle: ClaimHandle,
  status: number | null,
  ttlMs: number,
): PipelineValue[] {
  return [
    handle.scope,
    handle.key,
    handle.token,
    status === null ? null : String(status),
    String(ttlMs),
  ];
}

/** $1 scope, $2 key, $3 token, $4 step name, $5 result JSON, $6 lease ms, $7 steps held. */
export function stepValues(
  handle: ClaimHandle,
  index: number,
  step: RecordedStep,
  leaseMs: number,
): PipelineValue[] {
  return [
    handle.scope,
    handle.key,
    handle.token,
    step.name,
    step.result,
    String(leaseMs),
    String(index),
  ];
}

/** A statement built only for a store that keeps recovery points, or the error of asking without. */
export function stepsOnly(text: string | null): string {
  if (text === null) {
    throw new Error('nestjs-idempotency: this store was not set up to keep recovery points.');
  }
  return text;
}

/** Largest statement_timeout PostgreSQL accepts, in milliseconds. */
const MAX_STATEMENT_TIMEOUT_MS = 2 ** 31 - 1;

/**
 * Taken in a transactional request's transaction right after its claim won: rolling back to it
 * discards the handler's writes (and clears a transaction that a failed statement of the handler
 * aborted) but keeps the claim, its row and its lock, so that a response stored without those
 * writes is stored while the key stays held: no other request can claim it in between.
 */
export const CLAIM_SAVEPOINT: PipelineStatement = { text: 'SAVEPOINT nestjs_idempotency_claim' };

/** Discards what the transaction did after `CLAIM_SAVEPOINT`. */
export const ROLLBACK_TO_CLAIM: PipelineStatement = {
  text: 'ROLLBACK TO SAVEPOINT nestjs_idempotency_claim',
};

/**
 * What opens a transactional request's transaction: `begin` and, unless `statementTimeoutMs` is
 * 0, PostgreSQL's statement_timeout for this transaction alone. SET takes no snapshot, so the
 * isolation level of the BEGIN still holds for the claim after it.
 */
export function openTransaction(begin: string, statementTimeoutMs: number): PipelineStatement[] {
  return [{ text: begin }, ...localStatementTimeout(statementTimeoutMs)];
}

/**
 * What bounds each later statement of an open transaction to `statementTimeoutMs` (none for 0),
 * for a transaction opened by someone else.
 */
export function localStatementTimeout(statementTimeoutMs: number): PipelineStatement[] {
  if (
    !Number.isInteger(statementTimeoutMs) ||
    statementTimeoutMs < 0 ||
    statementTimeoutMs > MAX_STATEMENT_TIMEOUT_MS
  ) {
    // The value is written into the statement (SET takes no parameters).
    throw new Error(
      `nestjs-idempotency: statementTimeoutMs must be a whole number from 0 to ${MAX_STATEMENT_TIMEOUT_MS}, got ${statementTimeoutMs}.`,
    );
  }
  return statementTimeoutMs === 0
    ? []
    : [{ text: `SET LOCAL statement_timeout = ${statementTimeoutMs}` }];
}

/** What a transactional write needs of a table layout. */
export interface TransactionalWrites {
  namePrefix: string;
  inTransaction: { complete: string; markNotReplayable: string };
}

/** Transactional mode: writes `response` into the row claimed with `token` (see the layout). */
export function completionInTransaction(
  layout: TransactionalWrites,
  handle: ClaimHandle,
  token: string,
  response: StoredResponse,
  ttlMs: number,
): PipelineStatement {
  return {
    name: `${layout.namePrefix}_complete_in_transaction`,
    text: layout.inTransaction.complete,
    values: responseValues(handle, token, response, ttlMs),
  };
}

/** Transactional mode: marks the claimed row as not replayable (see the layout). */
export function notReplayableInTransaction(
  layout: TransactionalWrites,
  handle: ClaimHandle,
  status: number | null,
  ttlMs: number,
): PipelineStatement {
  return {
    name: `${layout.namePrefix}_not_replayable_in_transaction`,
    text: layout.inTransaction.markNotReplayable,
    values: notReplayableValues(handle, status, ttlMs),
  };
}

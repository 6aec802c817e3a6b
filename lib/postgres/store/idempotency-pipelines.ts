import type { ClaimHandle, ClaimRequest } from '../../store/claim-result.interface';
import type { StoredResponse } from '../../store/stored-response.interface';
import type { IdempotencyStatements } from '../sql/idempotency.sql';
import { BEGIN_READ_COMMITTED } from '../sql/partitioned-idempotency.sql';
import type { PipelineStatement, PipelineValue } from '../driver/pipelined-query';

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

const COMMIT: PipelineStatement = { text: 'COMMIT' };

/** $1 scope, $2 key, $3 fingerprint, $4 token, $5 lease ms, $6 ttl ms. */
function claimValues(request: ClaimRequest, token: string): PipelineValue[] {
  return [
    request.scope,
    request.key,
    request.fingerprint,
    token,
    String(request.lockTimeoutMs),
    String(request.ttlMs),
  ];
}

type KeyOf = Pick<ClaimHandle, 'scope' | 'key'>;

function keyLock(sql: IdempotencyStatements, text: string, name: string, of: KeyOf) {
  return { name: `${sql.namePrefix}_${name}`, text, values: [of.scope, of.key] };
}

/** Wraps `statement` in the partitioned layout's locked transaction (when the table has one). */
function locked(sql: IdempotencyStatements, of: KeyOf, statement: PipelineStatement): Planned {
  if (!sql.partitioned) {
    return { statements: [statement], at: 0 };
  }
  const lock = keyLock(sql, sql.partitioned.lockKey, 'key_lock', of);
  const implicit: Planned = { statements: [lock, statement], at: 1, implicitTransaction: true };
  return sql.partitioned.readCommittedByDefault ? implicit : inExplicitTransaction(implicit);
}

/** `planned` in a READ COMMITTED transaction of its own, for a client that cannot share a Sync. */
export function inExplicitTransaction(planned: Planned): Planned {
  return {
    statements: [{ text: BEGIN_READ_COMMITTED }, ...planned.statements, COMMIT],
    at: planned.at + 1,
  };
}

/** Lease mode: the claim of `request` under `token`. */
export function leaseClaim(sql: IdempotencyStatements, request: ClaimRequest, token: string) {
  return locked(sql, request, {
    name: `${sql.namePrefix}_claim`,
    text: sql.partitioned?.claim ?? sql.claim,
    values: claimValues(request, token),
  });
}

/** Largest statement_timeout PostgreSQL accepts, in milliseconds. */
const MAX_STATEMENT_TIMEOUT_MS = 2 ** 31 - 1;

/**
 * What opens a transactional request's transaction: `begin` and, unless `statementTimeoutMs` is
 * 0, PostgreSQL's statement_timeout for this transaction alone. SET takes no snapshot, so the
 * isolation level of the BEGIN still holds for the claim after it.
 */
export function openTransaction(begin: string, statementTimeoutMs: number): PipelineStatement[] {
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
    ? [{ text: begin }]
    : [{ text: begin }, { text: `SET LOCAL statement_timeout = ${statementTimeoutMs}` }];
}

/**
 * Transactional mode: the claim of `request` under `token` inside the caller's transaction,
 * after `opening` (the statements that open it, in the same round trip; none when already open).
 */
export function transactionalClaim(
  sql: IdempotencyStatements,
  request: ClaimRequest,
  token: string,
  opening: readonly PipelineStatement[],
): Planned {
  const statements: PipelineStatement[] = [...opening];
  if (sql.partitioned) {
    statements.push(keyLock(sql, sql.partitioned.tryLockKey, 'try_key_lock', request));
  }
  statements.push({
    name: `${sql.namePrefix}_claim_in_transaction`,
    text: sql.partitioned?.transactionalClaim ?? sql.transactionalClaim,
    values: claimValues(request, token),
  });
  return { statements, at: statements.length - 1 };
}

/** The claim's partition (partitioned layout), as a parameter. */
function expiresAt(sql: IdempotencyStatements, handle: ClaimHandle): PipelineValue[] {
  if (!sql.partitioned) {
    return [];
  }
  if (handle.location === undefined) {
    throw new Error('nestjs-idempotency: a claim on a partitioned table carries its expiry.');
  }
  return [handle.location];
}

function responseValues(
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

function notReplayableValues(
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

/** Lease mode: stores `response` in the claim's row. */
export function leaseComplete(
  sql: IdempotencyStatements,
  handle: ClaimHandle,
  response: StoredResponse,
  ttlMs: number,
): Planned {
  return locked(sql, handle, {
    name: `${sql.namePrefix}_complete`,
    text: sql.partitioned?.complete ?? sql.complete,
    values: [...responseValues(handle, handle.token, response, ttlMs), ...expiresAt(sql, handle)],
  });
}

/** Lease mode: marks the claim's row as not replayable (returns the row's new expiry when partitioned). */
export function leaseMarkNotReplayable(
  sql: IdempotencyStatements,
  handle: ClaimHandle,
  status: number | null,
  ttlMs: number,
): Planned {
  return locked(sql, handle, {
    name: `${sql.namePrefix}_not_replayable`,
    text: sql.partitioned?.markNotReplayable ?? sql.markNotReplayable,
    values: [...notReplayableValues(handle, status, ttlMs), ...expiresAt(sql, handle)],
  });
}

/** Lease mode: deletes the claim's row unless it completed. */
export function leaseRelease(sql: IdempotencyStatements, handle: ClaimHandle): Planned {
  return locked(sql, handle, {
    name: `${sql.namePrefix}_release`,
    text: sql.partitioned?.release ?? sql.release,
    values: [handle.scope, handle.key, handle.token],
  });
}

/** Transactional mode: writes `response` into the row claimed with `token` (fails without one). */
export function completionInTransaction(
  sql: IdempotencyStatements,
  handle: ClaimHandle,
  token: string,
  response: StoredResponse,
  ttlMs: number,
): PipelineStatement {
  return {
    name: `${sql.namePrefix}_complete_in_transaction`,
    text: sql.partitioned?.completeInTransaction ?? sql.completeInTransaction,
    values: responseValues(handle, token, response, ttlMs),
  };
}

/** Transactional mode: marks the claimed row as not replayable (fails without one). */
export function notReplayableInTransaction(
  sql: IdempotencyStatements,
  handle: ClaimHandle,
  status: number | null,
  ttlMs: number,
): PipelineStatement {
  return {
    name: `${sql.namePrefix}_not_replayable_in_transaction`,
    text: sql.partitioned?.markNotReplayableInTransaction ?? sql.markNotReplayableInTransaction,
    values: notReplayableValues(handle, status, ttlMs),
  };
}

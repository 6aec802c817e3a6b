/*
 * The statements of a table partitioned by expiry (see docs/partitioning.md). PostgreSQL cannot
 * keep a unique (scope, key) index on such a table, so a per-key advisory lock, taken in a
 * statement of its own before the statements that read and write the key, is what keeps one live
 * row per key: under READ COMMITTED each statement takes a new snapshot, so the statements after
 * the lock see everything the lock's previous holder committed. Every writer of a key takes it.
 *
 * Expiry times are cut to whole milliseconds, and a claim returns its row's `expires_at` as epoch
 * milliseconds in text (no type parser or DateStyle of the application touches it), so that later
 * writes can name the row's partition exactly: a lookup by (scope, key) alone probes every
 * partition.
 */

import {
  failingWithoutRow,
  releaseKeepingSteps,
  saveStepSql,
  stepsTakenOver,
} from './idempotency.sql';
import { assertTableName } from './table-name';
import { KEY_LOCK } from './key-lock.sql';

/** A transaction-local setting that carries "this transaction holds the key's lock" to the claim. */
const KEY_LOCKED_SETTING = 'nestjs_idempotency.key_locked';

/** `at` milliseconds from now() ($n a float8 number of milliseconds), cut to milliseconds. */
export const expiryIn = (milliseconds: string) =>
  `date_trunc('milliseconds', now() + ${milliseconds} * interval '1 millisecond')`;

/** Every transaction of the partitioned layout: the key lock must come before the snapshot. */
export const BEGIN_READ_COMMITTED = 'BEGIN ISOLATION LEVEL READ COMMITTED';

/** An expiry as the handle carries it: epoch milliseconds, as text. */
const AS_MS = (column: string) => `(extract(epoch FROM ${column}) * 1000)::bigint::text`;
/** The expiry a handle carries ($n, epoch milliseconds), back as a timestamptz, exactly. */
const FROM_MS = (parameter: string) =>
  `(timestamptz 'epoch' + ${parameter}::bigint * interval '1 millisecond')`;

/**
 * Makes the statement fail (division by zero, SQLSTATE 22012) unless its transaction is READ
 * COMMITTED: under REPEATABLE READ or SERIALIZABLE the snapshot would come before the lock. The
 * store reads the server's default at start-up; this catches a change after it.
 */
const READ_COMMITTED_ONLY = `1 / (current_setting('transaction_isolation') = 'read committed')::int = 1`;

/** The statements of a partitioned table. */
export interface PartitionedStatements {
  /** $1 scope, $2 key: waits for the key's lock (lease mode, first in its transaction). */
  lockKey: string;
  /** $1 scope, $2 key: takes the key's lock if free, and records whether it did (transactional mode). */
  tryLockKey: string;
  /** Lease mode claim, after lockKey. Same parameters and columns as the single table's, plus `claimed_expires_at_ms`. */
  claim: string;
  /** Transactional claim, after tryLockKey: claims only when the lock was taken, else `busy`. */
  transactionalClaim: string;
  /** $1 scope, $2 key, $3 token, $4 status, $5 headers, $6 body, $7 ttl ms, $8 the claim's expiry (ms). */
  complete: string;
  /** $1 scope, $2 key, $3 token, $4 status, $5 ttl ms, $6 the claim's expiry (ms); returns the new one. */
  markNotReplayable: string;
  /** $1 scope, $2 key, $3 token: the claim's live row, wherever a late write moved it. */
  release: string;
  /**
   * Transactional completion: $1-$7 as complete; the row is the one this transaction claimed. It
   * fails when that row is gone (see failingWithoutRow).
   */
  completeInTransaction: string;
  /** Transactional markNotReplayable: $1-$5 as markNotReplayable, failing the same way. */
  markNotReplayableInTransaction: string;
  /**
   * With recovery points only: $1-$7 as the ordinary table's, $8 the claim's expiry (ms); returns
   * the row's new expiry (the row may move partition).
   */
  saveStep: string | null;
}

function claimSql(T: string, transactional: boolean, recoveryPoints: boolean): string {
  // A claim in transactional mode expires at the value its completion writes again (now() is the
  // transaction's start for both), so the completion finds the row in the partition it names and
  // never moves it.
  const expiresAt = transactional ? expiryIn('$6::float8') : expiryIn('($5::float8 + $6::float8)');
  const locked = transactional
    ? `current_setting('${KEY_LOCKED_SETTING}', true) = 'true' AND `
    : '';
  const busy = transactional
    ? `
UNION ALL
SELECT 'busy', NULL, NULL, NULL, NULL, NULL, NULL, NULL${recoveryPoints ? ', NULL' : ''}
 WHERE NOT (SELECT ok FROM may_claim) AND NOT EXISTS (SELECT 1 FROM existing WHERE NOT claimable)`
    : '';
  // Only a live row in flight is taken over, and it keeps the steps its claims recorded, under
  // its own token; a row inserted starts without. Transactional claims record no steps.
  const steps = !recoveryPoints
    ? ''
    : transactional
      ? ', steps = NULL'
      : `, steps = ${stepsTakenOver('r', '$4::uuid')}`;
  const returnedSteps = recoveryPoints ? `, steps -> 'list' AS steps` : '';
  return `
WITH existing AS (
  SELECT e.state, e.fingerprint, e.response_status, e.response_headers, e.response_body,
         ceil(extract(epoch FROM (e.locked_until - now())) * 1000)::float8 AS lease_left_ms,
         e.expires_at,
         (e.state = 'in_flight' AND e.locked_until <= now()
          AND e.fingerprint IS NOT DISTINCT FROM $3::varchar) AS claimable
    FROM ${T} e
   WHERE e.scope = $1 AND e.key = $2 AND e.expires_at > now()
   ORDER BY e.expires_at DESC
   LIMIT 1
), may_claim AS (
  SELECT ${locked}NOT EXISTS (SELECT 1 FROM existing WHERE NOT claimable) AS ok
), taken AS (
  UPDATE ${T} r
     SET fingerprint = $3::varchar, state = 'in_flight', lock_token = $4::uuid,
         locked_until = now() + $5::float8 * interval '1 millisecond', expires_at = ${expiresAt},
         response_status = NULL, response_headers = NULL, response_body = NULL,
         created_at = now(), completed_at = NULL${steps}
   WHERE (SELECT ok FROM may_claim)
     AND r.scope = $1 AND r.key = $2 AND r.expires_at = (SELECT expires_at FROM existing)
     -- Rechecked on the row's latest version, against writers that do not take the key's lock
     -- (an instance still on the ordinary layout during a migration).
     AND r.state = 'in_flight' AND r.locked_until <= now()
  RETURNING r.expires_at${returnedSteps}
), inserted AS (
  INSERT INTO ${T} (scope, key, fingerprint, state, lock_token, locked_until, expires_at)
  SELECT $1, $2, $3::varchar, 'in_flight', $4::uuid,
         now() + $5::float8 * interval '1 millisecond', ${expiresAt}
   WHERE (SELECT ok FROM may_claim) AND NOT EXISTS (SELECT 1 FROM existing)
  RETURNING expires_at${returnedSteps}
)
SELECT 'claimed' AS outcome, NULL::varchar AS state, NULL::varchar AS fingerprint,
       NULL::smallint AS response_status, NULL::text AS response_headers,
       NULL::bytea AS response_body, NULL::float8 AS lease_left_ms,
       expires_at AS claimed_expires_at_ms${recoveryPoints ? ', steps' : ''}
  FROM (SELECT ${AS_MS('expires_at')} AS expires_at${recoveryPoints ? ', steps::text AS steps' : ''} FROM taken
        UNION ALL SELECT ${AS_MS('expires_at')}${recoveryPoints ? ', steps::text' : ''} FROM inserted) claimed
UNION ALL
SELECT 'existing', state, fingerprint, response_status, response_headers, response_body,
       lease_left_ms, NULL${recoveryPoints ? ', NULL' : ''}
  FROM existing
 WHERE NOT claimable${busy}`;
}

/**
 * Builds the statements for the partitioned table `T` (validated by `assertTableName`); with
 * `recoveryPoints`, keeping claims' steps as the ordinary table's statements do.
 */
export function partitionedStatements(T: string, recoveryPoints = false): PartitionedStatements {
  assertTableName(T);
  const clearSteps = recoveryPoints ? ', steps = NULL' : '';
  /*
   * A claim whose handler outlived its lease and its TTL has an expired row, and another claim may
   * have inserted a live one since: the late write must not bring the old row back to life (two
   * live rows). On the single table the newer claim took the row over, which fences the late
   * write off the same way.
   */
  const notSupersededAt = (clock: string) => `(expires_at > ${clock} OR NOT EXISTS (
         SELECT 1 FROM ${T} o
          WHERE o.scope = $1 AND o.key = $2 AND o.expires_at > ${clock} AND o.lock_token <> $3::uuid))`;
  const notSuperseded = notSupersededAt('now()');
  // `located`: how the row's expiry compares with where the handle says it is filed.
  const completion = (expiresAt: string, located: string) => `
    UPDATE ${T}
       SET state = 'completed', response_status = $4, response_headers = $5, response_body = $6,
           locked_until = NULL, completed_at = now(), expires_at = ${expiresAt}${clearSteps}
     WHERE scope = $1 AND key = $2 AND lock_token = $3::uuid AND state = 'in_flight'
       AND expires_at ${located} AND ${notSuperseded}`;
  const notReplayable = (expiresAt: string, located: string) => `
    UPDATE ${T}
       SET state = 'not_replayable', response_status = $4, locked_until = NULL,
           completed_at = now(), expires_at = ${expiresAt}${clearSteps}
     WHERE scope = $1 AND key = $2 AND lock_token = $3::uuid AND state <> 'completed'
       AND expires_at ${located} AND ${notSuperseded}`;
  const ownRow = 'scope = $1 AND key = $2 AND lock_token = $3::uuid';
  // Lease-mode writes find the row in the partition the handle names. With recovery points, at
  // that expiry or later: a step's recording moves the row later, and may land after the handle
  // last heard where (it timed out, and the request answered without it); the later partitions
  // are the few created ahead.
  const filed = recoveryPoints ? '>=' : '=';
  // In the claim's own transaction, the row's expiry is the claim's (see claimSql).
  const sameTransaction = expiryIn('$7::float8');
  return {
    lockKey: `SELECT pg_advisory_xact_lock(${KEY_LOCK}) WHERE ${READ_COMMITTED_ONLY}`,
    tryLockKey: `SELECT set_config('${KEY_LOCKED_SETTING}', pg_try_advisory_xact_lock(${KEY_LOCK})::text, true)`,
    claim: claimSql(T, false, recoveryPoints),
    transactionalClaim: claimSql(T, true, recoveryPoints),
    complete: completion(expiryIn('$7::float8'), `${filed} ${FROM_MS('$8')}`),
    markNotReplayable: `${notReplayable(expiryIn('$5::float8'), `${filed} ${FROM_MS('$6')}`)}
     RETURNING ${AS_MS('expires_at')} AS expires_at_ms`,
    // Rare (a failed or timed-out execution), so it looks in every live partition: a mark that
    // timed out may still have landed and moved the row, after the handle was last updated.
    release: recoveryPoints
      ? releaseKeepingSteps(T, `${ownRow} AND expires_at > now()`)
      : `
    DELETE FROM ${T}
     WHERE ${ownRow} AND state <> 'completed' AND expires_at > now()`,
    // Moves the expiry like the ordinary table's, cut to milliseconds: it names the partition.
    saveStep: recoveryPoints
      ? `${saveStepSql(
          T,
          `${ownRow} AND state = 'in_flight' AND expires_at >= ${FROM_MS('$8')}`,
          // In a step's own transaction now() is its BEGIN (see saveStepSql).
          ` AND ${notSupersededAt('statement_timestamp()')}`,
          (at) => `date_trunc('milliseconds', ${at})`,
        )}
     RETURNING ${AS_MS('expires_at')} AS expires_at_ms`
      : null,
    completeInTransaction: failingWithoutRow(completion(sameTransaction, `= ${sameTransaction}`)),
    markNotReplayableInTransaction: failingWithoutRow(
      notReplayable(expiryIn('$5::float8'), `= ${expiryIn('$5::float8')}`),
    ),
  };
}

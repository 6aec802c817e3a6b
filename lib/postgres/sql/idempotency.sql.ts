import { createHash } from 'node:crypto';
import { IDEMPOTENCY_TABLE, assertTableName } from './table-name';
import { KEY_LOCK } from './key-lock.sql';

/*
 * The store's statements, each sent as a named prepared statement so PostgreSQL plans it once per
 * connection. Durations arrive in milliseconds and are computed against the database clock only,
 * so that application hosts with skewed clocks agree on leases and expiry.
 */

/** A key may be claimed when it has expired, or when its in-flight lease ended (same request). */
const CLAIMABLE = (row: string, fingerprint: string) => `(
  ${row}.expires_at <= now()
  OR (${row}.state = 'in_flight' AND ${row}.locked_until <= now()
      AND ${row}.fingerprint IS NOT DISTINCT FROM ${fingerprint})
)`;

const EXISTING_COLUMNS = `e.state, e.fingerprint, e.response_status, e.response_headers,
         e.response_body,
         ceil(extract(epoch FROM (e.locked_until - now())) * 1000)::float8 AS lease_left_ms`;

/**
 * Builds the claim statement. $1 scope, $2 key, $3 fingerprint, $4 claim token, $5 lease ms,
 * $6 ttl ms.
 *
 * `existing` reads the row as of the statement's snapshot. When there is none (or it may be
 * claimed) the upsert runs; its ON CONFLICT arm re-checks the latest row version under a row lock,
 * so of any number of concurrent claims exactly one wins. A replay inserts nothing and writes
 * nothing: no transaction id, no WAL flush. An empty result means the row changed between the
 * snapshot and the upsert; the caller tries again.
 *
 * In transactional mode the claim first takes a transaction-scoped advisory lock on the key
 * without waiting: the row of a claim in another open transaction is invisible, and the lock is
 * what tells "busy" from "new". Blocking on the unique index instead would pin one pooled
 * connection per waiting duplicate.
 */
function claimSql(T: string, transactional: boolean, recoveryPoints: boolean): string {
  const lock = transactional
    ? `lock AS MATERIALIZED (
  SELECT pg_try_advisory_xact_lock(${KEY_LOCK}) AS got
), `
    : '';
  const locked = transactional ? '(SELECT got FROM lock) AND ' : '';
  const busy = transactional
    ? `
UNION ALL
SELECT 'busy', NULL, NULL, NULL, NULL, NULL, NULL${recoveryPoints ? ', NULL' : ''}
  FROM lock
 WHERE NOT got AND NOT EXISTS (SELECT 1 FROM existing WHERE NOT claimable)`
    : '';
  // In transactional mode the row stays invisible until the commit, and now() is the
  // transaction's start for the claim and the completion alike: an expiry of now() + ttl from the
  // start is what the completion writes again, so it leaves every indexed column unchanged and
  // PostgreSQL can update the row in place (HOT) instead of adding entries to both indexes.
  const expiresAt = transactional
    ? `now() + $6::float8 * interval '1 millisecond'`
    : `now() + ($5::float8 + $6::float8) * interval '1 millisecond'`;
  // A lease taken over keeps the steps its claims recorded, now under its own token; an expired
  // key starts without any. Transactional claims record no steps.
  const steps = !recoveryPoints
    ? ''
    : transactional
      ? ', steps = NULL'
      : `, steps = CASE WHEN r.expires_at > now() THEN ${stepsTakenOver('r', 'EXCLUDED.lock_token')} END`;
  const returnedSteps = recoveryPoints ? `, (r.steps -> 'list')::text AS steps` : '';
  const claimedSteps = recoveryPoints ? ', steps' : '';
  const noSteps = recoveryPoints ? ', NULL' : '';
  return `
WITH ${lock}existing AS (
  SELECT ${EXISTING_COLUMNS},
         ${CLAIMABLE('e', '$3::varchar')} AS claimable
    FROM ${T} e
   WHERE e.scope = $1 AND e.key = $2
), claimed AS (
  INSERT INTO ${T} AS r (scope, key, fingerprint, state, lock_token, locked_until, expires_at)
  SELECT $1, $2, $3::varchar, 'in_flight', $4::uuid,
         now() + $5::float8 * interval '1 millisecond',
         ${expiresAt}
   WHERE ${locked}NOT EXISTS (SELECT 1 FROM existing WHERE NOT claimable)
  ON CONFLICT (scope, key) DO UPDATE
     SET fingerprint = EXCLUDED.fingerprint, state = 'in_flight', lock_token = EXCLUDED.lock_token,
         locked_until = EXCLUDED.locked_until, expires_at = EXCLUDED.expires_at,
         response_status = NULL, response_headers = NULL, response_body = NULL,
         created_at = now(), completed_at = NULL${steps}
   WHERE ${CLAIMABLE('r', 'EXCLUDED.fingerprint')}
  RETURNING r.state${returnedSteps}
)
SELECT 'claimed' AS outcome, NULL::varchar AS state, NULL::varchar AS fingerprint,
       NULL::smallint AS response_status, NULL::text AS response_headers,
       NULL::bytea AS response_body, NULL::float8 AS lease_left_ms${claimedSteps}
  FROM claimed
UNION ALL
SELECT 'existing', state, fingerprint, response_status, response_headers, response_body,
       lease_left_ms${noSteps}
  FROM existing
 WHERE NOT claimable AND NOT EXISTS (SELECT 1 FROM claimed)${busy}`;
}

/**
 * Wraps an UPDATE of the claim's own row so that it fails (division by zero, SQLSTATE 22012) when
 * it matched no row. It is sent in one round trip with the COMMIT after it, and a failed statement
 * keeps PostgreSQL from running that COMMIT: the handler's writes never commit without their
 * record.
 */
export function failingWithoutRow(update: string): string {
  return `
    WITH updated AS (${update}
     RETURNING 1)
    SELECT 1 / count(*)::int AS updated FROM updated`;
}

/** The statements of the store for one ordinary table (`lookup` serves both layouts). */
export interface IdempotencyStatements {
  /** Lease mode: claims a key with an autocommitted statement. */
  claim: string;
  /** Transactional mode: claims a key inside the caller's open transaction (see claimSql). */
  transactionalClaim: string;
  lookup: string;
  complete: string;
  /** `complete` for transactional mode: fails when the claim's row is gone (see failingWithoutRow). */
  completeInTransaction: string;
  markNotReplayable: string;
  /** `markNotReplayable` for transactional mode, failing like completeInTransaction. */
  markNotReplayableInTransaction: string;
  release: string;
  /** With recovery points only: records a claim's next step and renews its lease. */
  saveStep: string | null;
  purge: string;
  /** Prefix of the prepared statements' names, unique per table and variant (a name holds one text). */
  namePrefix: string;
}

/**
 * Builds the statements for the ordinary table `T` (validated by `assertTableName`). With
 * `recoveryPoints`, they also keep the steps of claims in the table's `steps` column (see
 * `IdempotencyRecoveryPoints`); without, they never name it, so tables made before it work.
 */
export function idempotencyStatements(
  T: string = IDEMPOTENCY_TABLE,
  recoveryPoints = false,
): IdempotencyStatements {
  assertTableName(T);
  // A finished key needs its steps no more.
  const clearSteps = recoveryPoints ? ', steps = NULL' : '';
  const complete = `
    UPDATE ${T}
       SET state = 'completed', response_status = $4, response_headers = $5, response_body = $6,
           locked_until = NULL, completed_at = now(),
           expires_at = now() + $7::float8 * interval '1 millisecond'${clearSteps}
     WHERE scope = $1 AND key = $2 AND lock_token = $3::uuid AND state = 'in_flight'`;
  const markNotReplayable = `
    UPDATE ${T}
       SET state = 'not_replayable', response_status = $4, locked_until = NULL, completed_at = now(),
           expires_at = now() + $5::float8 * interval '1 millisecond'${clearSteps}
     WHERE scope = $1 AND key = $2 AND lock_token = $3::uuid AND state <> 'completed'`;
  const ownRow = `scope = $1 AND key = $2 AND lock_token = $3::uuid`;
  return {
    claim: claimSql(T, false, recoveryPoints),
    transactionalClaim: claimSql(T, true, recoveryPoints),
    /**
     * $1 scope, $2 key: the live (unexpired) row of a key, without claiming it, and whether a
     * transaction holds the key's advisory lock right now (`free`). In an autocommitted statement the
     * lock, when taken, is released as the statement ends. Always returns one row.
     */
    lookup: `
    SELECT l.free, CASE WHEN e.state IS NULL THEN NULL ELSE 'existing' END AS outcome,
           ${EXISTING_COLUMNS}
      FROM (SELECT pg_try_advisory_xact_lock(${KEY_LOCK}) AS free) l
      LEFT JOIN ${T} e ON e.scope = $1 AND e.key = $2 AND e.expires_at > now()`,

    /** $1 scope, $2 key, $3 token, $4 status, $5 headers JSON, $6 body, $7 ttl ms. */
    complete,
    completeInTransaction: failingWithoutRow(complete),

    /**
     * $1 scope, $2 key, $3 token, $4 status (null while unknown), $5 ttl ms. Fenced by the token alone:
     * a route that writes its own response is marked before it runs, and again once its status is known.
     */
    markNotReplayable,
    markNotReplayableInTransaction: failingWithoutRow(markNotReplayable),

    /**
     * $1 scope, $2 key, $3 token. Only the claim's own row, whatever its state (see above). With
     * recovery points, a row in flight that holds steps is kept instead (see releaseKeepingSteps).
     */
    release: recoveryPoints
      ? releaseKeepingSteps(T, ownRow)
      : `
    DELETE FROM ${T}
     WHERE ${ownRow} AND state <> 'completed'`,
    saveStep: recoveryPoints ? saveStepSql(T, `${ownRow} AND state = 'in_flight'`, '') : null,

    /**
     * Deletes up to $1 expired rows. The transaction-scoped advisory lock lets one instance purge
     * while the others skip their turn; SKIP LOCKED keeps the purge from waiting on rows that
     * claims hold. A claim of an expired key whose row this batch holds waits for the batch.
     * ONLY keeps it off a partitioned table (a table migrated while instances on this layout still
     * run, or a half-done configuration): a ctid is unique only within one partition, and the
     * DELETE would take live rows of other partitions with the expired ones.
     */
    purge: `
    WITH purger AS (SELECT pg_try_advisory_xact_lock(hashtext('${T}:purge')) AS ok)
    DELETE FROM ONLY ${T}
     WHERE (SELECT ok FROM purger)
       AND ctid = ANY (ARRAY(
             SELECT ctid FROM ONLY ${T}
              WHERE expires_at <= now()
              ORDER BY expires_at
              LIMIT $1
              FOR UPDATE SKIP LOCKED))`,
    namePrefix: `${statementNamePrefix(T)}${recoveryPoints ? '_steps' : ''}`,
  };
}

/*
 * A row's `steps` is `{ "claim": token, "list": [{ "name", "result" }, ...] }`: the steps count
 * only while `claim` is the row's current token. Statements that record no steps (an instance
 * without the `steps` option, on the same table) change the token and leave the column alone, so
 * what they leave behind is never taken for the steps of their claim.
 */

/** Whether the steps of the row (`row.`, or the statement's own table) are its claim's. */
const stepsOwned = (row = '') => `${row}steps ->> 'claim' = ${row}lock_token::text`;
/** The steps the claim of the row recorded, as a JSON array, or null. */
const ownSteps = (row = '') => `CASE WHEN ${stepsOwned(row)} THEN ${row}steps -> 'list' END`;

/** The steps of `row` handed to the claim of token `token` (an SQL expression), or null. */
export function stepsTakenOver(row: string, token: string): string {
  return `CASE WHEN ${stepsOwned(`${row}.`)}
              THEN jsonb_build_object('claim', ${token}::text, 'list', ${row}.steps -> 'list') END`;
}

/**
 * Releases the claim's row (`own` selects it): deletes it, unless it is in flight with steps.
 * That one stays with its lease ended, for the same request to take over and resume after its
 * steps, under a new token so that nothing the released claim still sends lands. One row, the
 * claim's, when it was released; none when the claim was no longer current. The row is locked
 * first, and what to do is read from its latest version: a step recorded while the release waited
 * for the row keeps it.
 */
export function releaseKeepingSteps(T: string, own: string): string {
  return `
    WITH current AS (
      SELECT state = 'in_flight' AND ${stepsOwned()} IS TRUE AS keep
        FROM ${T}
       WHERE ${own} AND state <> 'completed'
         FOR UPDATE
    ), fresh AS (
      SELECT md5(random()::text || clock_timestamp()::text)::uuid AS token
    ), kept AS (
      UPDATE ${T}
         SET lock_token = (SELECT token FROM fresh),
             steps = jsonb_set(steps, '{claim}', to_jsonb((SELECT token FROM fresh)::text)),
             locked_until = least(locked_until, now())
       WHERE ${own} AND (SELECT keep FROM current)
      RETURNING 1
    ), freed AS (
      DELETE FROM ${T}
       WHERE ${own} AND NOT (SELECT keep FROM current)
      RETURNING 1
    )
    SELECT 1 FROM kept UNION ALL SELECT 1 FROM freed`;
}

/**
 * Appends a step to the claim's row and renews its lease; the key's expiry moves by as much as
 * the lease end did, so a key never expires sooner after its lease than the claim set (`expiry`
 * wraps the new expiry, for a layout that files rows by it). $4 the step's name, $5 its result as
 * JSON text (kept as text, byte for byte), $6 lease ms, $7 how many steps the row must hold.
 *
 * The lease runs from the statement's start, not the transaction's: in a step's own transaction
 * (`runInTransaction`) now() is its BEGIN, before the step's work ran.
 */
export function saveStepSql(
  T: string,
  own: string,
  filed: string,
  expiry = (at: string) => at,
): string {
  const lockedUntil = `statement_timestamp() + $6::float8 * interval '1 millisecond'`;
  const held = `coalesce(${ownSteps()}, '[]'::jsonb)`;
  return `
    UPDATE ${T}
       SET steps = jsonb_build_object(
             'claim', lock_token::text,
             'list', ${held}
                     || jsonb_build_array(jsonb_build_object('name', $4::text, 'result', $5::text))),
           locked_until = ${lockedUntil},
           expires_at = ${expiry(`expires_at + greatest(interval '0', ${lockedUntil} - locked_until)`)}
     WHERE ${own} AND jsonb_array_length(${held}) = $7::int${filed}`;
}

/** Prefix of the prepared statements' names for table `T`: a name holds one text per connection. */
export function statementNamePrefix(T: string): string {
  return T === IDEMPOTENCY_TABLE
    ? 'nestjs_idempotency'
    : `nestjs_idempotency_${createHash('sha256').update(T).digest('hex').slice(0, 8)}`;
}

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
function claimSql(T: string, transactional: boolean): string {
  const lock = transactional
    ? `lock AS MATERIALIZED (
  SELECT pg_try_advisory_xact_lock(${KEY_LOCK}) AS got
), `
    : '';
  const locked = transactional ? '(SELECT got FROM lock) AND ' : '';
  const busy = transactional
    ? `
UNION ALL
SELECT 'busy', NULL, NULL, NULL, NULL, NULL, NULL
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
         created_at = now(), completed_at = NULL
   WHERE ${CLAIMABLE('r', 'EXCLUDED.fingerprint')}
  RETURNING r.state
)
SELECT 'claimed' AS outcome, NULL::varchar AS state, NULL::varchar AS fingerprint,
       NULL::smallint AS response_status, NULL::text AS response_headers,
       NULL::bytea AS response_body, NULL::float8 AS lease_left_ms
  FROM claimed
UNION ALL
SELECT 'existing', state, fingerprint, response_status, response_headers, response_body,
       lease_left_ms
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
  purge: string;
  /** Prefix of the prepared statements' names, unique per table (a name holds one text). */
  namePrefix: string;
}

/** Builds the statements for the ordinary table `T` (validated by `assertTableName`). */
export function idempotencyStatements(T: string = IDEMPOTENCY_TABLE): IdempotencyStatements {
  assertTableName(T);
  const complete = `
    UPDATE ${T}
       SET state = 'completed', response_status = $4, response_headers = $5, response_body = $6,
           locked_until = NULL, completed_at = now(),
           expires_at = now() + $7::float8 * interval '1 millisecond'
     WHERE scope = $1 AND key = $2 AND lock_token = $3::uuid AND state = 'in_flight'`;
  const markNotReplayable = `
    UPDATE ${T}
       SET state = 'not_replayable', response_status = $4, locked_until = NULL, completed_at = now(),
           expires_at = now() + $5::float8 * interval '1 millisecond'
     WHERE scope = $1 AND key = $2 AND lock_token = $3::uuid AND state <> 'completed'`;
  return {
    claim: claimSql(T, false),
    transactionalClaim: claimSql(T, true),
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

    /** $1 scope, $2 key, $3 token. Only the claim's own row, whatever its state (see above). */
    release: `
    DELETE FROM ${T}
     WHERE scope = $1 AND key = $2 AND lock_token = $3::uuid AND state <> 'completed'`,

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
    namePrefix: statementNamePrefix(T),
  };
}

/** Prefix of the prepared statements' names for table `T`: a name holds one text per connection. */
export function statementNamePrefix(T: string): string {
  return T === IDEMPOTENCY_TABLE
    ? 'nestjs_idempotency'
    : `nestjs_idempotency_${createHash('sha256').update(T).digest('hex').slice(0, 8)}`;
}

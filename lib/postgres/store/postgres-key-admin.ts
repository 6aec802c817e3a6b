import type { Pool, QueryResultRow } from 'pg';
import { SQLSTATE, sqlstateOf } from '../driver/sqlstate';
import {
  type IdempotencyKeyAdmin,
  type IdempotencyKeyInfo,
  type InFlightQuery,
  claimIdOf,
  fingerprintHashOf,
} from '../../store/key-admin.interface';

/**
 * A delete that met a row a concurrent update moved to another partition (a claim renewing its
 * expiry) fails as a serialization failure: it runs again and finds the row where it went.
 */
const ROW_MOVED_ATTEMPTS = 3;

interface KeyRow extends QueryResultRow {
  key: string;
  token: string;
  state: IdempotencyKeyInfo['state'];
  fingerprint: string | null;
  response_status: number | null;
  /** Timestamps as epoch milliseconds: whatever timestamptz parser the application set. */
  claimed_ms: number;
  finished_ms: number | null;
  lease_ends_ms: number | null;
  expires_ms: number;
  response_headers?: string | null;
  response_body?: Buffer | null;
}

const ms = (column: string) => `(extract(epoch FROM ${column}) * 1000)::float8`;

/**
 * Key administration on the PostgreSQL table, ordinary or partitioned: every statement names its
 * scope, and reads live (unexpired) rows only. A transactional route's key in flight is a row its
 * transaction has not committed, so none of these sees it.
 */
export class PostgresKeyAdmin implements IdempotencyKeyAdmin {
  private readonly columns: string;

  constructor(
    private readonly table: string,
    private readonly pool: () => Pool,
  ) {
    this.columns = `key, lock_token::text AS token, state, fingerprint, response_status, ${ms('created_at')} AS claimed_ms,
      ${ms('completed_at')} AS finished_ms, ${ms('locked_until')} AS lease_ends_ms,
      ${ms('expires_at')} AS expires_ms`;
  }

  async findKey(
    scope: string,
    key: string,
    withResponse: boolean,
  ): Promise<IdempotencyKeyInfo | null> {
    const response = withResponse ? ', response_headers, response_body' : '';
    const { rows } = await this.pool().query<KeyRow>(
      `SELECT ${this.columns}${response} FROM ${this.table}
        WHERE scope = $1 AND key = $2 AND expires_at > now()
        ORDER BY expires_at DESC LIMIT 1`,
      [scope, key],
    );
    return rows[0] ? keyInfo(scope, rows[0]) : null;
  }

  releaseKey(scope: string, key: string, claimId?: string): Promise<boolean> {
    return this.deleteRows(
      `DELETE FROM ${this.table}
        WHERE scope = $1 AND key = $2 AND state = 'in_flight' AND expires_at > now()
          AND ($3::text IS NULL
               OR encode(sha256(convert_to(lock_token::text, 'UTF8')), 'hex') = $3::text)`,
      [scope, key, claimId ?? null],
    );
  }

  deleteKey(scope: string, key: string): Promise<boolean> {
    return this.deleteRows(
      `DELETE FROM ${this.table} WHERE scope = $1 AND key = $2 AND expires_at > now()`,
      [scope, key],
    );
  }

  private async deleteRows(sql: string, values: unknown[]): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      try {
        const { rowCount } = await this.pool().query(sql, values);
        return (rowCount ?? 0) > 0;
      } catch (error) {
        if (sqlstateOf(error) !== SQLSTATE.serializationFailure || attempt === ROW_MOVED_ATTEMPTS) {
          throw error;
        }
      }
    }
  }

  /**
   * Reads the scope's rows only: through the primary key's index on (scope, key) for a scope that
   * holds a small share of the table, by a scan of the table for one that holds much of it (the
   * anonymous scope of a public API, say). It is an operator's query, not one for every request.
   */
  async listInFlight(scope: string, query: InFlightQuery): Promise<IdempotencyKeyInfo[]> {
    const { rows } = await this.pool().query<KeyRow>(
      `SELECT ${this.columns} FROM ${this.table}
        WHERE scope = $1 AND state = 'in_flight' AND expires_at > now()
          AND created_at <= now() - $2::float8 * interval '1 millisecond'
        ORDER BY created_at LIMIT $3`,
      [scope, query.olderThanMs, query.limit],
    );
    return rows.map((row) => keyInfo(scope, row));
  }
}

function keyInfo(scope: string, row: KeyRow): IdempotencyKeyInfo {
  const info: IdempotencyKeyInfo = {
    scope,
    key: row.key,
    state: row.state,
    claimId: claimIdOf(row.token),
    claimedAt: new Date(row.claimed_ms),
    finishedAt: row.finished_ms === null ? null : new Date(row.finished_ms),
    leaseEndsAt: row.lease_ends_ms === null ? null : new Date(row.lease_ends_ms),
    expiresAt: new Date(row.expires_ms),
    status: row.response_status,
    fingerprintHash: fingerprintHashOf(row.fingerprint),
  };
  if (row.state === 'completed' && row.response_headers !== undefined) {
    info.response = {
      status: row.response_status ?? 0,
      headers: row.response_headers
        ? (JSON.parse(row.response_headers) as Record<string, string>)
        : {},
      body: row.response_body ?? null,
    };
  }
  return info;
}

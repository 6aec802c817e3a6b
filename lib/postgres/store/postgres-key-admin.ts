import { hash } from 'node:crypto';
import type { Pool, QueryResultRow } from 'pg';
import type {
  IdempotencyKeyAdmin,
  IdempotencyKeyInfo,
  InFlightQuery,
} from '../../store/key-admin.interface';

interface KeyRow extends QueryResultRow {
  key: string;
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
    this.columns = `key, state, fingerprint, response_status, ${ms('created_at')} AS claimed_ms,
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

  async releaseKey(scope: string, key: string): Promise<boolean> {
    const { rowCount } = await this.pool().query(
      `DELETE FROM ${this.table}
        WHERE scope = $1 AND key = $2 AND state = 'in_flight' AND expires_at > now()`,
      [scope, key],
    );
    return (rowCount ?? 0) > 0;
  }

  async deleteKey(scope: string, key: string): Promise<boolean> {
    const { rowCount } = await this.pool().query(
      `DELETE FROM ${this.table} WHERE scope = $1 AND key = $2 AND expires_at > now()`,
      [scope, key],
    );
    return (rowCount ?? 0) > 0;
  }

  /** Served by the primary key's index on (scope, key): one scope's rows are read, no other's. */
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
    claimedAt: new Date(row.claimed_ms),
    finishedAt: row.finished_ms === null ? null : new Date(row.finished_ms),
    leaseEndsAt: row.lease_ends_ms === null ? null : new Date(row.lease_ends_ms),
    expiresAt: new Date(row.expires_ms),
    status: row.response_status,
    fingerprintHash: row.fingerprint === null ? null : hash('sha256', row.fingerprint),
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

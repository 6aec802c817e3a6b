import type { QueryResultRow } from 'pg';
import { decideExistingKey } from '../../protocol/claim-decision';
import type { ClaimHandle, ClaimRequest, ClaimResult } from '../../store/claim-result.interface';
import type { RecordedStep } from '../../store/recovery-points.interface';

/** How often a claim is re-attempted when the key changes under it before answering 409. */
export const CLAIM_ATTEMPTS = 4;

/** What a claim statement returns, in either mode and layout. */
export interface ClaimRow extends QueryResultRow {
  outcome: 'claimed' | 'existing' | 'busy' | null;
  state: 'in_flight' | 'completed' | 'not_replayable' | null;
  fingerprint: string | null;
  response_status: number | null;
  response_headers: string | null;
  /** A `Buffer` from pg; a plain `Uint8Array` from drivers that decode bytea so (Prisma's). */
  response_body: Uint8Array | null;
  lease_left_ms: number | null;
  /** Partitioned table: where the claimed row is filed (epoch milliseconds, as text). */
  claimed_expires_at_ms?: string | null;
  /** With recovery points: the steps the claim took over, as JSON text (an array). */
  steps?: string | null;
}

/** What a row found by a claim means, or `retry` when it changed under the claim. */
export type Decided = Exclude<ClaimResult, { kind: 'claimed' }> | { kind: 'retry' };

/** The handle of a claim that `row` reports as won. */
export function claimHandle(request: ClaimRequest, token: string, row: ClaimRow): ClaimHandle {
  const handle: ClaimHandle = { scope: request.scope, key: request.key, token };
  if (row.claimed_expires_at_ms !== undefined && row.claimed_expires_at_ms !== null) {
    handle.location = row.claimed_expires_at_ms;
  }
  return handle;
}

/**
 * Follows a write that may have moved the claim's row (a partitioned table files rows by expiry):
 * when the write returned the row's new expiry (`expires_at_ms`), later writes of the claim look
 * there.
 */
export function followMovedRow(handle: ClaimHandle, rows: readonly QueryResultRow[]): void {
  const moved = (rows[0] as { expires_at_ms?: string } | undefined)?.expires_at_ms;
  if (moved !== undefined) {
    handle.location = moved;
  }
}

/** The answer for a key whose row a claim found (see `decideExistingKey`). */
export function decideRow(row: ClaimRow, request: ClaimRequest): Decided {
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
              body: asBuffer(row.response_body),
            }
          : null,
    },
    request.fingerprint,
  );
}

/** `bytes` as the Buffer a stored response holds, sharing its memory. */
function asBuffer(bytes: Uint8Array | null): Buffer | null {
  if (bytes === null || Buffer.isBuffer(bytes)) {
    return bytes;
  }
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The steps of a claimed row, in order (none when its `steps` column is null). */
export function recordedSteps(steps: string | null | undefined): RecordedStep[] {
  return steps ? ((JSON.parse(steps) as RecordedStep[] | null) ?? []) : [];
}

function parseHeaders(text: string | null): Record<string, string> {
  return text ? (JSON.parse(text) as Record<string, string>) : {};
}

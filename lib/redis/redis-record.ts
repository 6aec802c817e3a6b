import type { ExistingKey } from '../protocol/claim-decision';
import type { RecordedStep } from '../store/recovery-points.interface';
import type { StoredResponse } from '../store/stored-response.interface';

/*
 * One Redis string per key, so that a claim is one `SET NX PX GET`: it writes a new key, or
 * answers with the record it found, without a script. The record, in bytes:
 *
 *   state     1 byte: 'i' in flight, 'c' completed, 'n' not replayable
 *   token     36 bytes: the current claim's fencing token (a UUID)
 *   ttl:      the claim's TTL in ms. An in-flight key expires at lease end + TTL, so its lease
 *             left is its PTTL less this: Redis's clock, never the application's
 *   fpLength: the fingerprint's length in bytes, or 'n' when the request had none
 *   fp        the fingerprint
 *   then, for a completed key:       status ':' headersLength ':' ('b' | 'n' body) headers body
 *         for a not-replayable key:  the status, or nothing while unknown
 *         for a key in flight:       the steps its claims recorded (see stepEntry), if any
 *
 * State, token, TTL and fingerprint stay in place through every change, so the scripts fence a
 * write on bytes 2-37 and keep the fingerprint by copying the record's head.
 */

const STATE = { in_flight: 0x69, completed: 0x63, not_replayable: 0x6e } as const;
const COLON = 0x3a;
/** Where the TTL starts: after the state byte and the token. */
export const TTL_OFFSET = 37;
const NO_FINGERPRINT = 'n';
const HAS_BODY = 0x62;
const NOT_OURS = 'nestjs-idempotency: a Redis key holds a record this store did not write.';

/** The record of a new claim: in flight, with its token, TTL and fingerprint. */
export function inFlightRecord(token: string, ttlMs: number, fingerprint: string | null): string {
  if (token.length !== TTL_OFFSET - 1) {
    throw new Error('nestjs-idempotency: a Redis claim token must be a 36-character UUID.');
  }
  const length = fingerprint === null ? NO_FINGERPRINT : Buffer.byteLength(fingerprint);
  return `i${token}${ttlMs}:${length}:${fingerprint ?? ''}`;
}

/** What follows the head of a completed record: status and headers (the body goes after). */
export function completedTail(response: StoredResponse): string {
  const headers = JSON.stringify(response.headers);
  const body = response.body === null ? 'n' : 'b';
  return `${response.status}:${Buffer.byteLength(headers)}:${body}${headers}`;
}

/**
 * A step as it follows the head of a record in flight, after the steps before it: its length in
 * bytes, ':', then `{ name, result }` as JSON.
 */
export function stepEntry(step: RecordedStep): string {
  const payload = JSON.stringify({ name: step.name, result: step.result });
  return `${Buffer.byteLength(payload)}:${payload}`;
}

/** The steps that follow the head of a record in flight (see `stepEntry`), in order. */
export function recordedSteps(entries: Buffer): RecordedStep[] {
  const steps: RecordedStep[] = [];
  let at = 0;
  while (at < entries.length) {
    const lengthEnd = indexOf(entries, at);
    const end = lengthEnd + 1 + Number(entries.toString('latin1', at, lengthEnd));
    const { name, result } = JSON.parse(
      entries.toString('utf8', lengthEnd + 1, end),
    ) as RecordedStep;
    steps.push({ name, result });
    at = end;
  }
  return steps;
}

/** What follows the head of a not-replayable record. */
export function notReplayableTail(status: number | null): string {
  return status === null ? '' : String(status);
}

/** Whether a record found by a claim is in flight (its lease needs Redis's clock to judge). */
export function isInFlight(record: Buffer): boolean {
  return record[0] === STATE.in_flight;
}

/**
 * The key a claim found and did not take, as the shared decision reads it. The fingerprint is
 * compared as bytes with the request's: a string that UTF-8 cannot carry (a lone surrogate) still
 * matches itself.
 */
export function existingKey(
  record: Buffer,
  leaseLeftMs: number,
  requestFingerprint: string | null,
): ExistingKey {
  const ttlEnd = indexOf(record, TTL_OFFSET);
  const lengthEnd = indexOf(record, ttlEnd + 1);
  const length = record.toString('latin1', ttlEnd + 1, lengthEnd);
  const start = lengthEnd + 1;
  const end = length === NO_FINGERPRINT ? start : start + Number(length);
  const fingerprint =
    length === NO_FINGERPRINT
      ? null
      : requestFingerprint !== null &&
          record.subarray(start, end).equals(Buffer.from(requestFingerprint))
        ? requestFingerprint
        : record.toString('utf8', start, end);
  const key = { fingerprint, leaseLeftMs, response: null, status: null };
  switch (record[0]) {
    case STATE.in_flight:
      return { ...key, state: 'in_flight' };
    case STATE.not_replayable:
      return {
        ...key,
        state: 'not_replayable',
        status: end === record.length ? null : httpStatus(record, end, record.length),
      };
    case STATE.completed:
      return { ...key, state: 'completed', response: storedResponse(record, end) };
    default:
      throw new Error(NOT_OURS);
  }
}

function storedResponse(record: Buffer, tailStart: number): StoredResponse {
  const statusEnd = indexOf(record, tailStart);
  const lengthEnd = indexOf(record, statusEnd + 1);
  const headersStart = lengthEnd + 2;
  const headersEnd = headersStart + Number(record.toString('latin1', statusEnd + 1, lengthEnd));
  return {
    status: httpStatus(record, tailStart, statusEnd),
    headers: JSON.parse(record.toString('utf8', headersStart, headersEnd)) as Record<
      string,
      string
    >,
    // A view of the reply's own Buffer, which nothing else holds: the caller may keep it.
    body: record[lengthEnd + 1] === HAS_BODY ? record.subarray(headersEnd) : null,
  };
}

function httpStatus(record: Buffer, start: number, end: number): number {
  const text = record.toString('latin1', start, end);
  if (!/^[1-5][0-9]{2}$/.test(text)) {
    throw new Error(NOT_OURS);
  }
  return Number(text);
}

function indexOf(record: Buffer, from: number): number {
  const at = record.indexOf(COLON, from);
  if (at < 0) {
    throw new Error(NOT_OURS);
  }
  return at;
}

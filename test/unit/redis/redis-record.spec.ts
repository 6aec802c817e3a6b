import { randomUUID } from 'node:crypto';
import {
  completedTail,
  existingKey,
  inFlightRecord,
  isInFlight,
  notReplayableTail,
} from '../../../lib/redis/redis-record';
import type { StoredResponse } from '../../../lib/store/stored-response.interface';

/** The records the scripts build from a claim's head (see redis-scripts.ts). */
const completed = (head: string, response: StoredResponse): Buffer =>
  Buffer.concat([
    Buffer.from(`c${head.slice(1)}${completedTail(response)}`),
    response.body ?? Buffer.alloc(0),
  ]);
const notReplayable = (head: string, status: number | null): Buffer =>
  Buffer.from(`n${head.slice(1)}${notReplayableTail(status)}`);

const FINGERPRINTS = [null, '', 'sha256:abc', 'a:b:c', '12:n:', 'é ü 漢字 😀', 'lone \ud800 half'];

describe('Redis records', () => {
  it.each(FINGERPRINTS)('keep the fingerprint %j through every state', (fingerprint) => {
    const head = inFlightRecord(randomUUID(), 86_400_000, fingerprint);
    const response = { status: 201, headers: { 'content-type': 'x/y' }, body: Buffer.from('b') };
    for (const record of [Buffer.from(head), completed(head, response), notReplayable(head, 500)]) {
      expect(existingKey(record, 0, fingerprint).fingerprint).toBe(fingerprint);
    }
  });

  it('tell a stored fingerprint from the request one, byte for byte', () => {
    const head = inFlightRecord(randomUUID(), 1000, 'fp-1');
    expect(existingKey(Buffer.from(head), 5, 'fp-2')).toEqual({
      state: 'in_flight',
      fingerprint: 'fp-1',
      leaseLeftMs: 5,
      response: null,
      status: null,
    });
  });

  it('give back status, headers and body bytes of a completed key', () => {
    const head = inFlightRecord(randomUUID(), 1000, 'fp');
    const body = Buffer.from([0, 0x3a, 0xff, 0x7b, 0x22]);
    const headers = { 'content-type': 'a:b; x="é:"', location: '/o/1:2' };
    const key = existingKey(completed(head, { status: 200, headers, body }), 0, 'fp');
    expect(key.state).toBe('completed');
    expect(key.response).toEqual({ status: 200, headers, body });
  });

  it('tell an empty body from none', () => {
    const head = inFlightRecord(randomUUID(), 1000, null);
    const empty = existingKey(
      completed(head, { status: 200, headers: {}, body: Buffer.alloc(0) }),
      0,
      null,
    );
    const none = existingKey(completed(head, { status: 204, headers: {}, body: null }), 0, null);
    expect(empty.response?.body).toEqual(Buffer.alloc(0));
    expect(none.response?.body).toBeNull();
  });

  it('give the status of a not-replayable key, or null while unknown', () => {
    const head = inFlightRecord(randomUUID(), 1000, 'fp');
    expect(existingKey(notReplayable(head, 502), 0, 'fp')).toMatchObject({
      state: 'not_replayable',
      status: 502,
    });
    expect(existingKey(notReplayable(head, null), 0, 'fp')).toMatchObject({
      state: 'not_replayable',
      status: null,
    });
  });

  it('tell a key in flight from a finished one by its first byte', () => {
    const head = inFlightRecord(randomUUID(), 1000, null);
    expect(isInFlight(Buffer.from(head))).toBe(true);
    expect(isInFlight(notReplayable(head, null))).toBe(false);
  });

  it('refuse a value the store did not write, and a token that is not a UUID', () => {
    expect(() => existingKey(Buffer.from('c-not-ours'), 0, null)).toThrow(/did not write/);
    expect(() => existingKey(Buffer.from(`x${randomUUID()}1:n:`), 0, null)).toThrow(
      /did not write/,
    );
    const head = inFlightRecord(randomUUID(), 1000, null);
    expect(() => existingKey(Buffer.from(`n${head.slice(1)}zz`), 0, null)).toThrow(/did not write/);
    expect(() => existingKey(Buffer.from(`c${head.slice(1)}2x0:2:n{}`), 0, null)).toThrow(
      /did not write/,
    );
    expect(() => inFlightRecord('short', 1000, null)).toThrow(/36-character/);
  });
});

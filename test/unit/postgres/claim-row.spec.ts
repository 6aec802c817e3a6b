import { type ClaimRow, decideRow } from '../../../lib/postgres/store/claim-row';

const request = { scope: '', key: 'k', fingerprint: 'f', lockTimeoutMs: 1000, ttlMs: 60_000 };

const completed = (body: Uint8Array | null): ClaimRow => ({
  outcome: 'existing',
  state: 'completed',
  fingerprint: 'f',
  response_status: 201,
  response_headers: '{"content-type":"application/json"}',
  response_body: body,
  lease_left_ms: null,
});

describe('decideRow', () => {
  it("replays a body that the driver decoded as a plain Uint8Array (Prisma's) as a Buffer", () => {
    const bytes = new Uint8Array([0x7b, 0x7d, 0xff, 0x00]);
    const decided = decideRow(completed(bytes.subarray(1, 3)), request);
    expect(decided).toEqual({
      kind: 'replay',
      response: {
        status: 201,
        headers: { 'content-type': 'application/json' },
        body: Buffer.from([0x7d, 0xff]),
      },
    });
    if (decided.kind === 'replay') {
      expect(Buffer.isBuffer(decided.response.body)).toBe(true);
    }
  });

  it("keeps pg's Buffer and an empty body as they are", () => {
    const body = Buffer.from('{"id":1}');
    const decided = decideRow(completed(body), request);
    expect(decided.kind === 'replay' && decided.response.body).toBe(body);
    const empty = decideRow(completed(null), request);
    expect(empty.kind === 'replay' && empty.response.body).toBeNull();
  });
});

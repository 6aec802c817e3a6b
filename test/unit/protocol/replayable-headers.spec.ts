import { replayableHeaderNames } from '../../../lib/protocol/replayable-headers';

describe('replayableHeaderNames', () => {
  it('always replays Content-Type and Location', () => {
    expect(replayableHeaderNames()).toEqual(['content-type', 'location']);
    expect(replayableHeaderNames([])).toEqual(['content-type', 'location']);
  });

  it('adds configured headers in lower case, once each', () => {
    expect(
      replayableHeaderNames(['X-Order-Version', 'ETag', 'x-order-version', 'LOCATION']),
    ).toEqual(['content-type', 'location', 'x-order-version', 'etag']);
  });

  // Credentials and cookies must never reach whoever retries; the rest belong to one connection.
  it.each([
    'Set-Cookie',
    'SET-COOKIE',
    'Authorization',
    'WWW-Authenticate',
    'Proxy-Authenticate',
    'Proxy-Authorization',
    'Cookie',
    'Connection',
    'Keep-Alive',
    'Transfer-Encoding',
    'TE',
    'Trailer',
    'Upgrade',
    'Content-Length',
    'Idempotent-Replayed',
  ])('never stores %s, even when configured', (name) => {
    expect(replayableHeaderNames([name, 'X-Kept'])).toEqual(['content-type', 'location', 'x-kept']);
  });
});

import { createHash } from 'node:crypto';
import { redisKeyName } from '../../../lib/redis/redis-key';
import {
  COMPLETE_SCRIPT,
  MARK_NOT_REPLAYABLE_SCRIPT,
  RELEASE_SCRIPT,
  TAKEOVER_SCRIPT,
} from '../../../lib/redis/redis-scripts';

const SCRIPTS = [TAKEOVER_SCRIPT, COMPLETE_SCRIPT, MARK_NOT_REPLAYABLE_SCRIPT, RELEASE_SCRIPT];

describe('redisKeyName', () => {
  it('is the prefix and the base64url SHA-256 of scope and key', () => {
    const digest = createHash('sha256').update('["user-1","order-42"]').digest('base64url');
    expect(redisKeyName('idempotency:', 'user-1', 'order-42')).toBe(`idempotency:${digest}`);
    expect(redisKeyName('', 'user-1', 'order-42')).toBe(digest);
  });

  it('shows neither the key nor the principal', () => {
    const name = redisKeyName('p:', 'alice@example.com', 'payment-7f3a');
    expect(name).not.toContain('alice');
    expect(name).not.toContain('7f3a');
    expect(name).toMatch(/^p:[A-Za-z0-9_-]{43}$/);
  });

  it('keeps pairs apart that a separator would join', () => {
    const names = [
      redisKeyName('', 'a', 'b:c'),
      redisKeyName('', 'a:b', 'c'),
      redisKeyName('', 'a\u0000b', 'c'),
      redisKeyName('', 'a', '\u0000b'),
      redisKeyName('', '', 'ab'),
      redisKeyName('', 'ab', ''),
      redisKeyName('', '"a","b"', ''),
      redisKeyName('', 'a', 'b'),
    ];
    expect(new Set(names).size).toBe(names.length);
  });

  it('is stable: the same pair always names the same hash', () => {
    expect(redisKeyName('x:', 's', 'k')).toBe(redisKeyName('x:', 's', 'k'));
    expect(redisKeyName('x:', 's', 'k')).not.toBe(redisKeyName('y:', 's', 'k'));
  });

  it('keeps hash tags of the key out of the name, so keys spread over Cluster slots', () => {
    expect(redisKeyName('i:', 's', '{tag}')).not.toContain('{');
  });
});

describe('the store scripts', () => {
  it('are named by the SHA-1 of their source, as EVALSHA expects', () => {
    for (const script of SCRIPTS) {
      expect(script.sha).toBe(createHash('sha1').update(script.lua).digest('hex'));
    }
  });

  it("touch one key only, and judge a lease by Redis's clock", () => {
    for (const script of SCRIPTS) {
      expect(script.lua).not.toMatch(/KEYS\[2\]/);
    }
    expect(TAKEOVER_SCRIPT.lua).toContain("redis.call('PTTL', KEYS[1])");
  });
});

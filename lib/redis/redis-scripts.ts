import { createHash } from 'node:crypto';

/** A Lua script of the store: run by its SHA-1, and sent whole only when Redis lacks it. */
export interface RedisScript {
  readonly lua: string;
  readonly sha: string;
}

const script = (lua: string): RedisScript => ({
  lua,
  sha: createHash('sha1').update(lua).digest('hex'),
});

/*
 * One hash per key (KEYS[1]), with the fields:
 *   state    in_flight | completed | not_replayable
 *   token    the current claim's fencing token
 *   fp       the fingerprint (absent when the request had none)
 *   lease    end of an in-flight lease, in ms of Redis's clock (TIME)
 *   status   the response status, or the not-replayable key's status when known
 *   headers  JSON of the replayable headers
 *   body     the body bytes (absent for an empty body)
 * Expiry is the hash's own: an in-flight key at lease + TTL, a finished one TTL after it finished.
 */

/**
 * Claims a key, or returns what it holds.
 * ARGV: token, '1' or '0' (has a fingerprint), fingerprint, lease ms, TTL ms.
 * Returns {'claimed'}, or {state, fp, lease left ms, status, headers, body}, headers and body
 * only for a completed key.
 */
export const CLAIM_SCRIPT = script(`
local record = redis.call('HMGET', KEYS[1], 'state', 'fp', 'lease', 'status', 'headers', 'body')
local state = record[1]
if state and state ~= 'in_flight' then
  return {state, record[2], 0, record[4], record[5], record[6]}
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
if state then
  local fp = record[2]
  local same = (ARGV[2] == '1' and fp == ARGV[3]) or (ARGV[2] == '0' and not fp)
  local left = tonumber(record[3]) - now
  if left > 0 or not same then
    return {state, fp, left, record[4], false, false}
  end
  redis.call('DEL', KEYS[1])
end
local lease = now + tonumber(ARGV[4])
if ARGV[2] == '1' then
  redis.call('HSET', KEYS[1], 'state', 'in_flight', 'token', ARGV[1], 'lease', lease, 'fp', ARGV[3])
else
  redis.call('HSET', KEYS[1], 'state', 'in_flight', 'token', ARGV[1], 'lease', lease)
end
redis.call('PEXPIREAT', KEYS[1], lease + tonumber(ARGV[5]))
return {'claimed'}
`);

/**
 * Stores the response of the current in-flight claim.
 * ARGV: token, TTL ms, status, headers JSON, '1' or '0' (has a body), body. Returns 1 or 0.
 */
export const COMPLETE_SCRIPT = script(`
local record = redis.call('HMGET', KEYS[1], 'token', 'state')
if record[1] ~= ARGV[1] or record[2] ~= 'in_flight' then
  return 0
end
redis.call('HDEL', KEYS[1], 'lease')
if ARGV[5] == '1' then
  redis.call('HSET', KEYS[1], 'state', 'completed', 'status', ARGV[3], 'headers', ARGV[4], 'body', ARGV[6])
else
  redis.call('HSET', KEYS[1], 'state', 'completed', 'status', ARGV[3], 'headers', ARGV[4])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`);

/**
 * Marks the current claim executed but not replayable (again, once its status is known).
 * ARGV: token, TTL ms, '1' or '0' (has a status), status. Returns 1 or 0.
 */
export const MARK_NOT_REPLAYABLE_SCRIPT = script(`
local record = redis.call('HMGET', KEYS[1], 'token', 'state')
if record[1] ~= ARGV[1] or record[2] == 'completed' then
  return 0
end
redis.call('HDEL', KEYS[1], 'lease', 'status')
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'state', 'not_replayable', 'status', ARGV[4])
else
  redis.call('HSET', KEYS[1], 'state', 'not_replayable')
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`);

/** Deletes the current claim unless it completed. ARGV: token. Returns 1 or 0. */
export const RELEASE_SCRIPT = script(`
local record = redis.call('HMGET', KEYS[1], 'token', 'state')
if record[1] ~= ARGV[1] or record[2] == 'completed' then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
`);

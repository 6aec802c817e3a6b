import { createHash } from 'node:crypto';

/** A Lua script of the store: run by its SHA-1, and sent whole only when Redis lacks it. */
export interface RedisScript {
  readonly lua: string;
  readonly sha: string;
}

/*
 * The record's layout is described in redis-record.ts. `head_end` finds where its head (state,
 * token, TTL and fingerprint) ends, and where the TTL ends; the token is bytes 2-37. What follows
 * the head of a record in flight is its steps (recovery points): they go with the key through a
 * takeover and a release, and are dropped when it finishes.
 */
const HEAD_END = `
local function head_end(record)
  local ttl_end = string.find(record, ':', 38, true)
  local length_end = string.find(record, ':', ttl_end + 1, true)
  local length = string.sub(record, ttl_end + 1, length_end - 1)
  if length == 'n' then
    return length_end, ttl_end
  end
  return length_end + tonumber(length), ttl_end
end
`;

const script = (body: string): RedisScript => {
  const lua = HEAD_END + body;
  return { lua, sha: createHash('sha1').update(lua).digest('hex') };
};

/**
 * The claim's second step, when its `SET NX` found a key in flight: takes the key over if the
 * lease has ended (Redis's clock: the key's PTTL less its TTL) and the fingerprint is the same,
 * keeping the steps the key holds, else returns what the key holds, whatever it holds by now.
 * ARGV: the new in-flight record, its expiry in ms (lease + TTL).
 * Returns {1, the steps taken over} (claimed), or {record, lease left in ms}.
 */
export const TAKEOVER_SCRIPT = script(`
local record = redis.call('GET', KEYS[1])
local steps = ''
if record then
  if string.byte(record, 1) ~= 105 then
    return {record, 0}
  end
  local fp_end, ttl_end = head_end(record)
  local left = redis.call('PTTL', KEYS[1]) - tonumber(string.sub(record, 38, ttl_end - 1))
  local new_end, new_ttl_end = head_end(ARGV[1])
  if left > 0 or string.sub(record, ttl_end + 1, fp_end) ~= string.sub(ARGV[1], new_ttl_end + 1, new_end) then
    return {record, left}
  end
  steps = string.sub(record, fp_end + 1)
end
redis.call('SET', KEYS[1], ARGV[1] .. steps, 'PX', ARGV[2])
return {1, steps}
`);

/**
 * Stores the response of the current in-flight claim (its steps are dropped).
 * ARGV: token, TTL ms, status and headers (redis-record.ts), body. Returns 1 or 0.
 */
export const COMPLETE_SCRIPT = script(`
local record = redis.call('GET', KEYS[1])
if not record or string.byte(record, 1) ~= 105 or string.sub(record, 2, 37) ~= ARGV[1] then
  return 0
end
local fp_end = head_end(record)
redis.call('SET', KEYS[1], 'c' .. string.sub(record, 2, fp_end) .. ARGV[3] .. ARGV[4], 'PX', ARGV[2])
return 1
`);

/**
 * Adds a step to the current in-flight claim, when it holds exactly ARGV[2] steps, and renews its
 * lease: the key then expires the lease (ARGV[4] ms) and its TTL from now, so the gap between the
 * lease's end and the key's expiry stays the TTL.
 * ARGV: token, steps held, the step as redis-record.ts encodes it, lease ms. Returns 1 or 0.
 */
export const SAVE_STEP_SCRIPT = script(`
local record = redis.call('GET', KEYS[1])
if not record or string.byte(record, 1) ~= 105 or string.sub(record, 2, 37) ~= ARGV[1] then
  return 0
end
local fp_end, ttl_end = head_end(record)
local held = 0
local at = fp_end + 1
while at <= #record do
  local length_end = string.find(record, ':', at, true)
  at = length_end + 1 + tonumber(string.sub(record, at, length_end - 1))
  held = held + 1
end
if held ~= tonumber(ARGV[2]) then
  return 0
end
local ttl = tonumber(string.sub(record, 38, ttl_end - 1))
redis.call('SET', KEYS[1], record .. ARGV[3], 'PX', tonumber(ARGV[4]) + ttl)
return 1
`);

/**
 * Marks the current claim executed but not replayable (again, once its status is known).
 * ARGV: token, TTL ms, the status or ''. Returns 1 or 0.
 */
export const MARK_NOT_REPLAYABLE_SCRIPT = script(`
local record = redis.call('GET', KEYS[1])
if not record or string.byte(record, 1) == 99 or string.sub(record, 2, 37) ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], 'n' .. string.sub(record, 2, head_end(record)) .. ARGV[3], 'PX', ARGV[2])
return 1
`);

/**
 * Deletes the current claim unless it completed; one in flight that holds steps is kept instead,
 * under a new token (nothing the released claim still sends lands) and with its lease ended (the
 * key expires its TTL from now), for the same request to take over and resume after its steps.
 * ARGV: token, the new token. Returns 1 or 0.
 */
export const RELEASE_SCRIPT = script(`
local head = redis.call('GETRANGE', KEYS[1], 0, 36)
if string.byte(head, 1) == 99 or string.sub(head, 2, 37) ~= ARGV[1] then
  return 0
end
if string.byte(head, 1) == 105 then
  local record = redis.call('GET', KEYS[1])
  local fp_end, ttl_end = head_end(record)
  if fp_end < #record then
    local ttl = tonumber(string.sub(record, 38, ttl_end - 1))
    redis.call('SET', KEYS[1], 'i' .. ARGV[2] .. string.sub(record, 38), 'PX', ttl)
    return 1
  end
end
redis.call('DEL', KEYS[1])
return 1
`);

/** A key's record and its PTTL, read together. Returns {record or false, PTTL}. */
export const INSPECT_SCRIPT = script(`
return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}
`);

/**
 * Deletes the key while it is in flight: under the claim of ARGV[1], or whoever holds it when
 * ARGV[1] is ''. Returns 1 or 0.
 */
export const FORCE_RELEASE_SCRIPT = script(`
local head = redis.call('GETRANGE', KEYS[1], 0, 36)
if string.byte(head, 1) ~= 105 or (ARGV[1] ~= '' and string.sub(head, 2, 37) ~= ARGV[1]) then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
`);

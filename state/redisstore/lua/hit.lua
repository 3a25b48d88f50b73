-- hit.lua counts one hit and checks the limit and the block (Redis.Hit).
-- KEYS: window, block, samples, blocks index, keys index, spans.
-- ARGV: now ms, window ms, limit, block ms, subject, member, id, rule, key,
-- max samples.
-- Returns {count, blocked, new} and, for a block in force, since, until,
-- acted-on count, limit, window ms and the samples.
local now = tonumber(ARGV[1])
local span = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local blockfor = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - span)
redis.call('ZADD', KEYS[1], now, ARGV[6])
local n = redis.call('ZCARD', KEYS[1])
if n > limit + 1 then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - limit - 2)
  n = limit + 1
end
redis.call('PEXPIRE', KEYS[1], span)
redis.call('ZADD', KEYS[5], now + span, ARGV[7])
redis.call('HSET', KEYS[6], ARGV[7], span)
local b = redis.call('HMGET', KEYS[2], 'until', 'since', 'count', 'limit', 'window')
if b[1] and tonumber(b[1]) > now then
  local c = redis.call('HINCRBY', KEYS[2], 'count', 1)
  if ARGV[5] ~= '' and redis.call('LLEN', KEYS[3]) < tonumber(ARGV[10]) then
    redis.call('RPUSH', KEYS[3], ARGV[5])
  end
  local out = {n, 1, 0, b[2], b[1], c, b[4], b[5]}
  for _, s in ipairs(redis.call('LRANGE', KEYS[3], 0, -1)) do
    table.insert(out, s)
  end
  return out
end
if n <= limit then
  return {n, 0, 0}
end
if blockfor > 0 then
  local u = now + blockfor
  redis.call('DEL', KEYS[2], KEYS[3])
  redis.call('HSET', KEYS[2], 'rule', ARGV[8], 'key', ARGV[9], 'since', now, 'until', u,
    'count', 1, 'limit', limit, 'window', span)
  redis.call('PEXPIREAT', KEYS[2], u)
  if ARGV[5] ~= '' then
    redis.call('RPUSH', KEYS[3], ARGV[5])
    redis.call('PEXPIREAT', KEYS[3], u)
  end
  redis.call('ZADD', KEYS[4], u, ARGV[7])
end
return {n, 1, 1}

-- push.lua puts a block made elsewhere (by a daemon counting locally while
-- Redis was unreachable): a new block is created; a block in force is
-- extended to the later end and its acted-on count summed (Redis.Push).
-- KEYS: block, samples, blocks index.
-- ARGV: rule, key, since, until, count, limit, window ms, now, max samples,
-- id, samples...
-- Returns 0 for a block already ended, 1 for one that only added its
-- count, 2 for one created or extended.
local now = tonumber(ARGV[8])
local u = tonumber(ARGV[4])
if u <= now then
  return 0
end
local cur = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if cur > now then
  redis.call('HINCRBY', KEYS[1], 'count', ARGV[5])
  if u <= cur then
    return 1
  end
  redis.call('HSET', KEYS[1], 'until', u)
else
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('HSET', KEYS[1], 'rule', ARGV[1], 'key', ARGV[2], 'since', ARGV[3], 'until', u,
    'count', ARGV[5], 'limit', ARGV[6], 'window', ARGV[7])
end
for i = 11, #ARGV do
  if redis.call('LLEN', KEYS[2]) < tonumber(ARGV[9]) then
    redis.call('RPUSH', KEYS[2], ARGV[i])
  end
end
redis.call('PEXPIREAT', KEYS[1], u)
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('PEXPIREAT', KEYS[2], u)
end
redis.call('ZADD', KEYS[3], u, ARGV[10])
return 2

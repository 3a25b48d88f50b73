-- release.lua lifts one block and clears its window (Redis.Release).
-- KEYS: block, samples, window, blocks index, keys index, spans.
-- ARGV: id.
-- Returns {} when there was no block, else
-- {hash fields and values..., "", samples...}.
redis.call('ZREM', KEYS[4], ARGV[1])
local h = redis.call('HGETALL', KEYS[1])
if #h == 0 then
  return {}
end
local s = redis.call('LRANGE', KEYS[2], 0, -1)
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('HDEL', KEYS[6], ARGV[1])
table.insert(h, '')
for _, x in ipairs(s) do
  table.insert(h, x)
end
return h

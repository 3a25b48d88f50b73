-- sweep.lua drops index entries of windows and blocks that have expired
-- (the keys themselves expire by their TTL) (Redis.Sweep).
-- KEYS: blocks index, keys index, spans.
-- ARGV: now ms, batch.
-- Returns how many windows it dropped from the keys index.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
end
return #ids

// Package redisstore keeps loopbreaker's counts and blocks in Redis, so that
// several daemons (one beside each MTA) share them: a storm spread over
// several relays is stopped at the same total as on one.
//
// Redis is the direct client: every call is one round trip and returns
// Redis's errors. Shared wraps it with the local bbolt store the daemon
// falls back on while Redis is unreachable.
//
// The data, under a prefix ("loopbreaker:" by default), for ID(rule, key):
//
//	PREFIX w:ID      sorted set: the hits in the window, scored by Unix ms
//	                 (at most limit+1 kept), expiring a window after the last hit
//	PREFIX b:ID      hash: the block (rule, key, since, until, count, limit,
//	                 window), expiring when the block ends
//	PREFIX s:ID      list: the block's sample subjects, expiring with it
//	PREFIX blocks    sorted set: the IDs of the blocks, scored by their end
//	PREFIX keys      sorted set: the IDs with a window, scored by its expiry
//	PREFIX spans     hash: ID -> window length in ms (for Count and Top)
//
// A hit is one Lua script: trim the window, add the hit, count, check the
// block and start one when the count is over the limit. Redis runs scripts
// one at a time, so with any number of daemons exactly Limit hits of a
// storm pass. The daemons' clocks give the hit times: keep them in sync
// (NTP), as for any mail server.
package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loopbreaker/loopbreaker/state"
)

// Defaults of Options.
const (
	DefaultPrefix  = "loopbreaker:"
	DefaultTimeout = 3 * time.Second
)

// Options configure a Redis client. The zero value is usable.
type Options struct {
	// Now is the clock; when nil, Redis's own clock (TIME), read at Ping
	// and again every minute, so daemons whose clocks disagree still share
	// one sliding window.
	Now func() time.Time
	// Prefix is put before every key; DefaultPrefix when empty.
	Prefix string
	// Timeout bounds dialing, one read and one write unless the URL sets
	// dial_timeout, read_timeout or write_timeout; DefaultTimeout when zero.
	Timeout time.Duration
}

// Redis is the shared state in one Redis server. It is safe for concurrent use.
type Redis struct {
	c   *redis.Client
	now func() time.Time
	// clock follows Redis's clock when Options.Now is nil.
	clock  *serverClock
	prefix string
	// indexKeys are the blocks, keys and spans indexes, built once.
	indexKeys [3]string
	addr      string
	// member makes each hit's sorted-set member unique.
	member  atomic.Uint64
	process string
}

// New connects lazily to the Redis of url: redis://[:PASSWORD@]HOST:PORT[/DB]
// (rediss:// for TLS, unix:///PATH?db=N for a socket). It fails only on a
// bad URL; an unreachable server shows at the first call.
func New(url string, opts Options) (*Redis, error) {
	o, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("bad Redis URL %q: %w", Redact(url), err)
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	// ParseURL leaves the timeouts it was not given at zero (go-redis's
	// defaults: 5 s to dial, 3 s to read).
	if o.DialTimeout == 0 {
		o.DialTimeout = opts.Timeout
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = opts.Timeout
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = opts.Timeout
	}
	o.ContextTimeoutEnabled = true
	// A hit retried after a timeout may have been counted already: retry
	// only what never reached the server (a pooled connection Redis closed).
	if o.MaxRetries == 0 {
		o.MaxRetries = 1
	}
	// One connection per milter session counting at once, up to a point:
	// waiting for a free connection must not look like an outage.
	if o.PoolSize == 0 {
		o.PoolSize = 128
	}
	// A server that refuses connections is down: tell at once, the daemon
	// has its own backoff.
	if o.DialerRetries == 0 {
		o.DialerRetries = 1
	}
	var clock *serverClock
	if opts.Now == nil {
		clock = &serverClock{local: time.Now}
		opts.Now = clock.now
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	var id [6]byte
	_, _ = rand.Read(id[:])
	r := &Redis{
		c:       redis.NewClient(o),
		now:     opts.Now,
		clock:   clock,
		prefix:  opts.Prefix,
		addr:    Redact(url),
		process: hex.EncodeToString(id[:]),
	}
	r.indexKeys = [3]string{opts.Prefix + "blocks", opts.Prefix + "keys", opts.Prefix + "spans"}
	if clock != nil {
		clock.sync = r.syncClock
	}
	return r, nil
}

// serverClock is the local clock corrected by its offset from Redis's,
// measured with TIME (the middle of the round trip stands for the moment
// Redis read its clock).
type serverClock struct {
	local   func() time.Time
	sync    func(context.Context) error
	offset  atomic.Int64 // ns to add to the local clock
	synced  atomic.Int64 // local unix ns of the last measurement
	syncing atomic.Bool
}

// clockResync is how often the offset is measured again.
const clockResync = time.Minute

func (c *serverClock) now() time.Time {
	t := c.local()
	if t.UnixNano()-c.synced.Load() > int64(clockResync) && c.sync != nil && c.syncing.CompareAndSwap(false, true) {
		go func() {
			defer c.syncing.Store(false)
			ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
			defer cancel()
			_ = c.sync(ctx)
		}()
	}
	return t.Add(time.Duration(c.offset.Load()))
}

// syncClock measures the offset of the local clock from Redis's.
func (r *Redis) syncClock(ctx context.Context) error {
	c := r.clock
	t0 := c.local()
	srv, err := r.c.Time(ctx).Result()
	if err != nil {
		return err
	}
	t1 := c.local()
	mid := t0.Add(t1.Sub(t0) / 2)
	c.offset.Store(int64(srv.Sub(mid)))
	c.synced.Store(t1.UnixNano())
	return nil
}

// Redact is url without its password, for logs and status.
func Redact(url string) string {
	scheme, rest, ok := strings.Cut(url, "://")
	if !ok {
		return url
	}
	at := strings.LastIndexByte(rest, '@')
	if at < 0 || strings.IndexByte(rest[:at], '/') >= 0 {
		return url
	}
	return scheme + "://***@" + rest[at+1:]
}

// Addr is the server's URL without its password.
func (r *Redis) Addr() string { return r.addr }

// Close closes the connections.
func (r *Redis) Close() error { return r.c.Close() }

// Ping checks that the server answers.
// With Redis's clock, it also measures the local clock's offset from it.
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.c.Ping(ctx).Err(); err != nil {
		return err
	}
	if r.clock != nil {
		return r.syncClock(ctx)
	}
	return nil
}

func (r *Redis) k(kind, id string) string { return r.prefix + kind + ":" + id }
func (r *Redis) blocksKey() string        { return r.indexKeys[0] }
func (r *Redis) keysKey() string          { return r.indexKeys[1] }
func (r *Redis) spansKey() string         { return r.indexKeys[2] }

// hitScript counts one hit and checks the limit and the block.
// KEYS: window, block, samples, blocks index, keys index, spans.
// ARGV: now ms, window ms, limit, block ms, subject, member, id, rule, key, max samples.
// Returns {count, blocked, new} and, for a block in force, since, until,
// acted-on count, limit, window ms and the samples.
var hitScript = redis.NewScript(`
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
`)

// Hit counts one event and reports whether it is blocked, as
// state.Store.Hit does, in one round trip.
func (r *Redis) Hit(ctx context.Context, q state.Request) (state.Result, error) {
	if q.Limit < 0 || q.Window <= 0 {
		return state.Result{}, fmt.Errorf("redisstore: invalid request for rule %q: limit %d window %s", q.Rule, q.Limit, q.Window)
	}
	id := state.ID(q.Rule, q.Key)
	now := r.now()
	ms := now.UnixMilli()
	span := max(q.Window.Milliseconds(), 1)
	subject := state.ClipSubject(q.Subject)
	member := strconv.FormatInt(ms, 10) + ":" + r.process + ":" + strconv.FormatUint(r.member.Add(1), 10)
	blockMs := max(q.BlockFor.Milliseconds(), 0)
	v, err := hitScript.Run(ctx, r.c,
		[]string{r.k("w", id), r.k("b", id), r.k("s", id), r.indexKeys[0], r.indexKeys[1], r.indexKeys[2]},
		ms, span, q.Limit, blockMs, subject, member, id, q.Rule, q.Key, state.MaxSamples,
	).Slice()
	if err != nil {
		return state.Result{}, fmt.Errorf("redis %s: %w", r.addr, err)
	}
	if len(v) < 3 {
		return state.Result{}, fmt.Errorf("redis %s: unexpected answer %v", r.addr, v)
	}
	res := state.Result{Count: int(num(v[0])), Blocked: num(v[1]) == 1, NewBlock: num(v[2]) == 1}
	switch {
	case res.NewBlock:
		res.Block = state.Block{Rule: q.Rule, Key: q.Key, Since: time.UnixMilli(ms), Until: time.UnixMilli(ms + blockMs),
			Count: 1, Limit: q.Limit, Window: time.Duration(span) * time.Millisecond}
		if subject != "" {
			res.Block.Samples = []string{subject}
		}
	case res.Blocked && len(v) >= 8:
		res.Block = state.Block{Rule: q.Rule, Key: q.Key, Since: time.UnixMilli(num(v[3])), Until: time.UnixMilli(num(v[4])),
			Count: int(num(v[5])), Limit: int(num(v[6])), Window: time.Duration(num(v[7])) * time.Millisecond}
		for _, s := range v[8:] {
			if s, ok := s.(string); ok {
				res.Block.Samples = append(res.Block.Samples, s)
			}
		}
	}
	return res, nil
}

// num reads an integer of a script's answer (Lua numbers arrive as
// integers, hash fields as strings).
func num(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	return 0
}

// clip bounds a sample subject as state does.
// Blocked reports the block in force for (rule, key) without counting.
func (r *Redis) Blocked(ctx context.Context, rule, key string) (state.Block, bool, error) {
	bs, err := r.blocks(ctx, []string{state.ID(rule, key)})
	if err != nil || len(bs) == 0 {
		return state.Block{}, false, err
	}
	return bs[0], true, nil
}

// blocks reads the blocks of ids that are in force, in one round trip.
func (r *Redis) blocks(ctx context.Context, ids []string) ([]state.Block, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	pipe := r.c.Pipeline()
	hs := make([]*redis.MapStringStringCmd, len(ids))
	ss := make([]*redis.StringSliceCmd, len(ids))
	for i, id := range ids {
		hs[i] = pipe.HGetAll(ctx, r.k("b", id))
		ss[i] = pipe.LRange(ctx, r.k("s", id), 0, -1)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redis %s: %w", r.addr, err)
	}
	now := r.now()
	var out []state.Block
	for i := range ids {
		b, ok := decodeBlock(hs[i].Val(), ss[i].Val())
		if ok && now.Before(b.Until) {
			out = append(out, b)
		}
	}
	return out, nil
}

func decodeBlock(h map[string]string, samples []string) (state.Block, bool) {
	if len(h) == 0 || h["until"] == "" {
		return state.Block{}, false
	}
	return state.Block{
		Rule:    h["rule"],
		Key:     h["key"],
		Since:   time.UnixMilli(num(h["since"])),
		Until:   time.UnixMilli(num(h["until"])),
		Count:   int(num(h["count"])),
		Limit:   int(num(h["limit"])),
		Window:  time.Duration(num(h["window"])) * time.Millisecond,
		Samples: samples,
	}, true
}

// Count reports the current count for (rule, key) without counting.
func (r *Redis) Count(ctx context.Context, rule, key string) (int, error) {
	id := state.ID(rule, key)
	span, err := r.c.HGet(ctx, r.spansKey(), id).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("redis %s: %w", r.addr, err)
	}
	n, err := r.c.ZCount(ctx, r.k("w", id), "("+strconv.FormatInt(r.now().UnixMilli()-span, 10), "+inf").Result()
	if err != nil {
		return 0, fmt.Errorf("redis %s: %w", r.addr, err)
	}
	return int(n), nil
}

// Blocks lists the blocks in force, oldest first.
func (r *Redis) Blocks(ctx context.Context) ([]state.Block, error) {
	ids, err := r.blockIDs(ctx)
	if err != nil {
		return nil, err
	}
	bs, err := r.blocks(ctx, ids)
	if err != nil {
		return nil, err
	}
	sortBlocks(bs)
	return bs, nil
}

func sortBlocks(bs []state.Block) {
	sort.Slice(bs, func(i, j int) bool {
		if !bs[i].Since.Equal(bs[j].Since) {
			return bs[i].Since.Before(bs[j].Since)
		}
		return state.ID(bs[i].Rule, bs[i].Key) < state.ID(bs[j].Rule, bs[j].Key)
	})
}

// blockIDs lists the IDs of the blocks that have not ended.
func (r *Redis) blockIDs(ctx context.Context) ([]string, error) {
	ids, err := r.c.ZRangeByScore(ctx, r.blocksKey(), &redis.ZRangeBy{
		Min: "(" + strconv.FormatInt(r.now().UnixMilli(), 10), Max: "+inf",
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("redis %s: %w", r.addr, err)
	}
	return ids, nil
}

// releaseScript lifts one block and clears its window.
// KEYS: block, samples, window, blocks index, keys index, spans. ARGV: id.
// Returns {} when there was no block, else {hash fields and values..., "", samples...}.
var releaseScript = redis.NewScript(`
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
`)

// Release lifts the blocks that match, as state.Store.Release does: rule
// and key both given lift one; an empty rule lifts that key in every rule;
// an empty key lifts every block of the rule. Their windows are cleared.
func (r *Redis) Release(ctx context.Context, rule, key string) ([]state.Block, error) {
	if rule == "" && key == "" {
		return nil, errors.New("redisstore: release needs a rule or a key")
	}
	var ids []string
	if rule != "" && key != "" {
		ids = []string{state.ID(rule, key)}
	} else {
		all, err := r.blockIDs(ctx)
		if err != nil {
			return nil, err
		}
		for _, id := range all {
			ru, k := state.SplitID(id)
			if (rule == "" || ru == rule) && (key == "" || k == key) {
				ids = append(ids, id)
			}
		}
	}
	now := r.now()
	var lifted []state.Block
	for _, id := range ids {
		v, err := releaseScript.Run(ctx, r.c,
			[]string{r.k("b", id), r.k("s", id), r.k("w", id), r.blocksKey(), r.keysKey(), r.spansKey()}, id).StringSlice()
		if err != nil {
			return lifted, fmt.Errorf("redis %s: %w", r.addr, err)
		}
		h := map[string]string{}
		i := 0
		for ; i+1 < len(v) && v[i] != ""; i += 2 {
			h[v[i]] = v[i+1]
		}
		var samples []string
		if i < len(v) {
			samples = v[i+1:]
		}
		if b, ok := decodeBlock(h, samples); ok && now.Before(b.Until) {
			lifted = append(lifted, b)
		}
	}
	sortBlocks(lifted)
	return lifted, nil
}

// pushScript puts a block made elsewhere (by a daemon counting locally
// while Redis was unreachable): a new block is created; a block in force
// is extended to the later end and its acted-on count summed.
// KEYS: block, samples, blocks index. ARGV: rule, key, since, until, count,
// limit, window ms, now, max samples, id, samples...
var pushScript = redis.NewScript(`
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
`)

// Push puts a block made elsewhere into Redis: it starts there if Redis
// has none for its (rule, key), else the one in force lasts until the later
// end and counts both blocks' messages.
func (r *Redis) Push(ctx context.Context, b state.Block) error {
	id := state.ID(b.Rule, b.Key)
	args := []any{b.Rule, b.Key, b.Since.UnixMilli(), b.Until.UnixMilli(), b.Count, b.Limit,
		b.Window.Milliseconds(), r.now().UnixMilli(), state.MaxSamples, id}
	for _, s := range b.Samples {
		args = append(args, state.ClipSubject(s))
	}
	if err := pushScript.Run(ctx, r.c, []string{r.k("b", id), r.k("s", id), r.blocksKey()}, args...).Err(); err != nil {
		return fmt.Errorf("redis %s: %w", r.addr, err)
	}
	return nil
}

// Tracked is how many (rule, key) have hits in their window.
func (r *Redis) Tracked(ctx context.Context) (int, error) {
	n, err := r.c.ZCount(ctx, r.keysKey(), "("+strconv.FormatInt(r.now().UnixMilli(), 10), "+inf").Result()
	if err != nil {
		return 0, fmt.Errorf("redis %s: %w", r.addr, err)
	}
	return int(n), nil
}

// maxTop bounds the keys Top looks at.
const maxTop = 100000

// Top returns the n keys with the highest counts now, highest first. It
// reads every tracked window (up to 100000): for the admin, not per message.
func (r *Redis) Top(ctx context.Context, n int) ([]state.KeyCount, error) {
	if n <= 0 {
		return nil, nil
	}
	now := r.now().UnixMilli()
	ids, err := r.c.ZRangeByScore(ctx, r.keysKey(), &redis.ZRangeBy{
		Min: "(" + strconv.FormatInt(now, 10), Max: "+inf", Count: maxTop,
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("redis %s: %w", r.addr, err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	spans, err := r.c.HMGet(ctx, r.spansKey(), ids...).Result()
	if err != nil {
		return nil, fmt.Errorf("redis %s: %w", r.addr, err)
	}
	pipe := r.c.Pipeline()
	counts := make([]*redis.IntCmd, len(ids))
	for i, id := range ids {
		counts[i] = pipe.ZCount(ctx, r.k("w", id), "("+strconv.FormatInt(now-num(spans[i]), 10), "+inf")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("redis %s: %w", r.addr, err)
	}
	var out []state.KeyCount
	for i, id := range ids {
		if c := int(counts[i].Val()); c > 0 {
			rule, key := state.SplitID(id)
			out = append(out, state.KeyCount{Rule: rule, Key: key, Count: c})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Rule+out[i].Key < out[j].Rule+out[j].Key
	})
	if len(out) > n {
		out = out[:n]
	}
	return out, nil
}

// sweepScript drops index entries of windows and blocks that have expired
// (the keys themselves expire by their TTL). KEYS: blocks index, keys index,
// spans. ARGV: now, batch.
var sweepScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
end
return #ids
`)

// Sweep drops the index entries of what has expired, a batch at a time.
func (r *Redis) Sweep(ctx context.Context) error {
	for {
		n, err := sweepScript.Run(ctx, r.c, []string{r.blocksKey(), r.keysKey(), r.spansKey()}, r.now().UnixMilli(), 1000).Int()
		if err != nil {
			return fmt.Errorf("redis %s: %w", r.addr, err)
		}
		if n < 1000 {
			return nil
		}
	}
}

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
//	PREFIX events    stream: the fleet's audit trail, capped (events.go)
//
// In a Redis Cluster every key carries the hash tag of one of 64 buckets
// of IDs, each bucket with its own three indexes, so that a hit's script
// touches one slot (layout.go).
//
// A hit is one Lua script (lua/hit.lua): trim the window, add the hit,
// count, check the block and start one when the count is over the limit.
// Redis runs scripts one at a time (a cluster's master, those of its
// slots), so with any number of daemons exactly Limit hits of a storm pass.
//
// The hit times come from Redis's clock, not from each daemon's: a daemon
// measures the offset of its own clock from Redis's TIME whenever Ping
// succeeds (at start and at each reconnection) and again, in the
// background, at the first hit or lookup more than a minute after the last
// measurement, and times each hit by its own clock corrected by that offset
// (clock.go; until a first measurement succeeds, the offset is zero). So
// daemons whose clocks disagree still share one sliding window, and windows
// and blocks end by the clock Redis expires their keys by. The daemons'
// clocks need not agree with Redis's; a daemon's clock that jumps skews its
// hits until the next measurement. Options.Now replaces that clock.
package redisstore

// The files of the package, by concept:
//
//	redis.go    Redis, the client: Options, New, Ping, Close
//	url.go      the URLs: one server, Sentinel, cluster; their clients
//	layout.go   the key names; the buckets and hash tags of a cluster
//	clock.go    Redis's clock: the local clock's offset from TIME
//	scripts.go  the Lua scripts, embedded from lua/*.lua
//	hit.go      Hit: counting and the limit check, one script
//	blocks.go   the blocks: Blocked, Blocks, Release, Push
//	counts.go   the windows read without counting: Count, Tracked, Top
//	sweep.go    Sweep: dropping expired index entries
//	events.go   the fleet's audit trail: a stream, and Shared's sender
//	shared.go   Shared, the daemon's Backend: Redis with a local fallback
//	outage.go   Shared while Redis is unreachable and when it is back

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of Options.
const (
	DefaultPrefix  = "loopbreaker:"
	DefaultTimeout = 3 * time.Second
)

// Options configure a Redis client. The zero value is usable.
type Options struct {
	// Now is the clock; when nil, Redis's own clock (TIME): the local
	// clock corrected by its offset from Redis's, measured at Ping and
	// again a minute later at the next use, so daemons whose clocks
	// disagree still share one sliding window.
	Now func() time.Time
	// Prefix is put before every key; DefaultPrefix when empty.
	Prefix string
	// Timeout bounds dialing, one read and one write unless the URL sets
	// dial_timeout, read_timeout or write_timeout; DefaultTimeout when zero.
	Timeout time.Duration
}

// Redis is the shared state in one Redis server, a Sentinel-managed master
// or a Redis Cluster. It is safe for concurrent use.
type Redis struct {
	c    client
	mode mode
	now  func() time.Time
	// clock follows Redis's clock when Options.Now is nil.
	clock  *serverClock
	prefix string
	// buckets hold the indexes (layout.go): one, or clusterBuckets in a
	// cluster.
	buckets []bucket
	addr    string
	// timeout is the read timeout of one call.
	timeout time.Duration
	// member makes each hit's sorted-set member unique.
	member  atomic.Uint64
	process string
}

// New connects lazily to the Redis of url: redis://[:PASSWORD@]HOST:PORT[/DB]
// (rediss:// for TLS, unix:///PATH?db=N for a socket), a master behind
// Sentinel, redis-sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER[/DB],
// or a cluster, redis-cluster://[:PASSWORD@]HOST:PORT[,HOST:PORT...] (url.go).
// It fails only on a bad URL; an unreachable server shows at the first call.
func New(url string, opts Options) (*Redis, error) {
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	c, m, read, err := dial(url, opts.Timeout)
	if err != nil {
		return nil, err
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if m == modeCluster && strings.ContainsAny(opts.Prefix, "{}") {
		c.Close()
		return nil, fmt.Errorf("redisstore: prefix %q: no braces in a cluster (they would be the keys' hash tag)", opts.Prefix)
	}
	var clock *serverClock
	if opts.Now == nil {
		clock = &serverClock{local: time.Now}
		opts.Now = clock.now
	}
	var id [6]byte
	_, _ = rand.Read(id[:])
	r := &Redis{
		c:       c,
		mode:    m,
		now:     opts.Now,
		clock:   clock,
		prefix:  opts.Prefix,
		buckets: newBuckets(opts.Prefix, m),
		addr:    Redact(url),
		timeout: read,
		process: hex.EncodeToString(id[:]),
	}
	if clock != nil {
		clock.sync = r.syncClock
	}
	return r, nil
}

// Redact is url without its passwords (the user's, and those of the
// parameters password and sentinel_password), for logs and status.
func Redact(url string) string {
	url, query, hasQuery := strings.Cut(url, "?")
	if scheme, rest, ok := strings.Cut(url, "://"); ok {
		if at := strings.LastIndexByte(rest, '@'); at >= 0 && strings.IndexByte(rest[:at], '/') < 0 {
			url = scheme + "://***@" + rest[at+1:]
		}
	}
	if !hasQuery {
		return url
	}
	params := strings.Split(query, "&")
	for i, p := range params {
		if k, _, ok := strings.Cut(p, "="); ok && strings.HasSuffix(k, "password") {
			params[i] = k + "=***"
		}
	}
	return url + "?" + strings.Join(params, "&")
}

// Addr is the server's URL without its password.
func (r *Redis) Addr() string { return r.addr }

// Close closes the connections.
func (r *Redis) Close() error { return r.c.Close() }

// Ping checks that the server answers; in a cluster, that the master of
// every bucket's slot answers.
// With Redis's clock, it also measures the local clock's offset from it.
func (r *Redis) Ping(ctx context.Context) error {
	if cc, ok := r.c.(*redis.ClusterClient); ok {
		// go-redis reloads the map of slots to masters on MOVED, or every
		// minute: not when a master is gone. Reload it (in the background,
		// for the next Ping) so that a replica promoted is found.
		cc.ReloadState(ctx)
	}
	if err := r.c.Ping(ctx).Err(); err != nil {
		return err
	}
	if r.mode == modeCluster {
		pipe := r.c.Pipeline()
		for i := range r.buckets {
			pipe.Exists(ctx, r.buckets[i].blocks)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
	}
	if r.clock != nil {
		return r.syncClock(ctx)
	}
	return nil
}

// wrap names the server in an error of Redis.
func (r *Redis) wrap(err error) error { return fmt.Errorf("redis %s: %w", r.addr, err) }

// after is the ZCOUNT and ZRANGEBYSCORE bound for the scores above ms
// (exclusive): the hits after a window's start, the windows and blocks that
// have not ended at ms.
func after(ms int64) string { return "(" + strconv.FormatInt(ms, 10) }

package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loopbreaker/loopbreaker/state"
	"github.com/loopbreaker/loopbreaker/state/internal/every"
)

// Defaults of SharedOptions.
const (
	DefaultMinBackoff    = 100 * time.Millisecond
	DefaultMaxBackoff    = 5 * time.Second
	DefaultSweepInterval = time.Minute
)

// SharedOptions configure a Shared store. The zero value is usable.
type SharedOptions struct {
	// FailMode is what to do while Redis is unreachable; FailOpen when empty.
	FailMode FailMode
	// MinBackoff and MaxBackoff bound the wait between reconnection
	// attempts, which doubles from one to the other.
	MinBackoff, MaxBackoff time.Duration
	// SweepInterval is how often Redis's indexes are swept of what
	// expired; a negative value disables it.
	SweepInterval time.Duration
	// Logger; slog.Default() when nil.
	Logger *slog.Logger
	// Name is the MTA's name on its events in the fleet's audit trail;
	// the host's name when empty.
	Name string
}

// Shared is the daemon's state when several daemons share Redis: counts
// and blocks in Redis, the audit trail of the fleet in Redis too (each
// event also in the local state file), and the local state file as the
// fallback while Redis is unreachable. It
// implements state.Backend and is safe for concurrent use.
//
// The first failed call marks the store degraded and every call goes to
// the local store until a reconnection (with backoff) succeeds; the blocks
// the local store started meanwhile are then pushed to Redis, and releases
// made meanwhile applied there.
type Shared struct {
	redis *Redis
	local *state.Store
	opts  SharedOptions
	log   *slog.Logger

	degraded  atomic.Bool
	failMode  atomic.Value // FailMode; SetFailMode changes it
	outages   atomic.Uint64
	fallbacks atomic.Uint64

	mu       sync.Mutex
	since    time.Time
	lastErr  string
	pushed   map[string]time.Time // local blocks already in Redis: ID -> Since
	releases [][2]string          // releases made while degraded: rule, key

	// events wait there for sendEvents (events.go).
	events   eventQueue
	eventsMu sync.Mutex

	wake chan struct{}
	stop chan struct{}
	done sync.WaitGroup
}

var _ state.Backend = (*Shared)(nil)

// NewShared returns the shared store over r with local as its fallback
// and audit trail. It takes ownership of both (Close closes them). It
// checks Redis at once: when Redis does not answer, the daemon starts
// degraded rather than not at all.
func NewShared(r *Redis, local *state.Store, opts SharedOptions) *Shared {
	s := newShared(r, local, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	err := r.Ping(ctx)
	if err == nil {
		err = s.sync(ctx)
	}
	cancel()
	if err != nil {
		s.fail(err)
	} else {
		s.log.Info("state shared in Redis", "redis", r.Addr())
	}
	s.start()
	return s
}

// Attach is NewShared for a daemon that moves its state to r while it
// runs (a reload): it pushes to r the blocks in force of the backend the
// daemon leaves (carried: the old Redis's blocks, or nothing when the
// daemon had its state file alone), then the local blocks that carried
// has no copy of (so a block is pushed once, and its count not doubled).
// Unlike NewShared it fails, and takes ownership of nothing, when r does
// not answer or refuses a block: the daemon then keeps its old backend.
// On success it owns r and local.
func Attach(ctx context.Context, r *Redis, local *state.Store, opts SharedOptions, carried []state.Block) (*Shared, error) {
	if err := r.Ping(ctx); err != nil {
		return nil, fmt.Errorf("Redis %s does not answer: %w", r.Addr(), err)
	}
	s := newShared(r, local, opts)
	copies := make(map[string]bool, len(carried))
	for _, b := range carried {
		if err := r.Push(ctx, b); err != nil {
			return nil, fmt.Errorf("carrying the block %s %s to Redis %s: %w", b.Rule, b.Key, r.Addr(), err)
		}
		copies[state.ID(b.Rule, b.Key)] = true
	}
	for _, b := range local.Blocks() {
		if id := state.ID(b.Rule, b.Key); copies[id] {
			s.pushed[id] = b.Since
		}
	}
	if err := s.sync(ctx); err != nil {
		return nil, fmt.Errorf("pushing the local blocks to Redis %s: %w", r.Addr(), err)
	}
	s.log.Info("state shared in Redis", "redis", r.Addr(), "blocks_carried", len(carried))
	s.start()
	return s, nil
}

// newShared sets opts' defaults and builds the store, without touching
// Redis or starting anything.
func newShared(r *Redis, local *state.Store, opts SharedOptions) *Shared {
	if opts.FailMode == "" {
		opts.FailMode = FailOpen
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(DefaultMaxBackoff, opts.MinBackoff)
	}
	if opts.SweepInterval == 0 {
		opts.SweepInterval = DefaultSweepInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Name == "" {
		opts.Name, _ = os.Hostname()
	}
	redisLogger.Store(opts.Logger)
	redisLogOnce.Do(func() { redis.SetLogger(redisLog{}) })
	s := &Shared{
		redis:  r,
		local:  local,
		opts:   opts,
		log:    opts.Logger,
		pushed: make(map[string]time.Time),
		events: eventQueue{kick: make(chan struct{}, 1)},
		wake:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
	}
	s.failMode.Store(opts.FailMode)
	return s
}

// start runs the reconnection, the events' sender and the sweep.
func (s *Shared) start() {
	s.done.Add(1)
	go s.reconnect()
	s.done.Go(s.sendEvents)
	if s.opts.SweepInterval > 0 {
		s.done.Go(func() { every.Run(s.stop, s.opts.SweepInterval, s.sweep) })
	}
}

// Detach stops using Redis and leaves the local state file open (Local)
// for a daemon that moves its state elsewhere (a reload): it stops the
// background work, sends the audit events still queued (one try), and
// closes Redis's connections. The Shared is unusable afterwards.
func (s *Shared) Detach() {
	close(s.stop)
	s.done.Wait()
	if err := s.redis.Close(); err != nil {
		s.log.Warn("closing the connections to the Redis left", "redis", s.redis.Addr(), "err", err)
	}
}

// SetFailMode changes what the store does while Redis is unreachable (a
// reload of the policy's redis_fail_mode).
func (s *Shared) SetFailMode(m FailMode) {
	if m == "" {
		m = FailOpen
	}
	s.failMode.Store(m)
}

// mode is the fail mode in force.
func (s *Shared) mode() FailMode { return s.failMode.Load().(FailMode) }

// Redis is the Redis client.
func (s *Shared) Redis() *Redis { return s.redis }

// Local is the local state file.
func (s *Shared) Local() *state.Store { return s.local }

// Degraded reports whether Redis is unreachable now.
func (s *Shared) Degraded() bool { return s.degraded.Load() }

// BackendStatus describes the backend for `loopbreaker status`.
func (s *Shared) BackendStatus() state.BackendStatus {
	st := state.BackendStatus{
		Name: "redis", Address: s.redis.Addr(), Degraded: s.degraded.Load(), FailMode: string(s.mode()),
		Outages: s.outages.Load(), Fallbacks: s.fallbacks.Load(),
	}
	if st.Degraded {
		s.mu.Lock()
		st.DegradedSince, st.LastError = s.since, s.lastErr
		s.mu.Unlock()
	}
	return st
}

// sweep forgets the pushed local blocks that have ended and, unless
// degraded, sweeps Redis's indexes; it runs every SweepInterval.
func (s *Shared) sweep() {
	s.mu.Lock()
	for id := range s.pushed {
		rule, key := state.SplitID(id)
		if _, ok := s.local.Blocked(rule, key); !ok {
			delete(s.pushed, id)
		}
	}
	s.mu.Unlock()
	if s.degraded.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.redis.Sweep(ctx); err != nil {
		s.log.Warn("sweeping Redis's indexes", "err", err)
	}
}

// Hit counts one event in Redis, or locally while Redis is unreachable.
func (s *Shared) Hit(ctx context.Context, r state.Request) (state.Result, error) {
	if !s.degraded.Load() {
		res, err := s.redis.Hit(ctx, r)
		if err == nil {
			return res, nil
		}
		if !unavailable(ctx, err) {
			return res, err
		}
		s.fail(err)
	}
	s.fallbacks.Add(1)
	if s.mode() == FailPass {
		if _, ok := s.local.Blocked(r.Rule, r.Key); ok {
			return s.local.Hit(ctx, r)
		}
		return state.Result{Count: 1}, nil
	}
	return s.local.Hit(ctx, r)
}

// Blocked reports the block in force for (rule, key).
func (s *Shared) Blocked(rule, key string) (state.Block, bool) {
	if !s.degraded.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), s.redis.timeout)
		b, ok, err := s.redis.Blocked(ctx, rule, key)
		cancel()
		if err == nil {
			return b, ok
		}
		s.fail(err)
	}
	return s.local.Blocked(rule, key)
}

// Count reports the current count for (rule, key).
func (s *Shared) Count(rule, key string) int {
	if !s.degraded.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), s.redis.timeout)
		n, err := s.redis.Count(ctx, rule, key)
		cancel()
		if err == nil {
			return n
		}
		s.fail(err)
	}
	return s.local.Count(rule, key)
}

// Blocks lists the blocks in force, oldest first: Redis's, or the local
// ones while Redis is unreachable.
func (s *Shared) Blocks() []state.Block {
	if !s.degraded.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		bs, err := s.redis.Blocks(ctx)
		cancel()
		if err == nil {
			return bs
		}
		s.fail(err)
	}
	return s.local.Blocks()
}

// Release lifts the matching blocks in Redis and in the local state file.
// While Redis is unreachable it lifts the local ones and lifts the shared
// ones when Redis is back.
func (s *Shared) Release(ctx context.Context, rule, key string) ([]state.Block, error) {
	if rule == "" && key == "" {
		return nil, errors.New("redisstore: release needs a rule or a key")
	}
	local, lerr := s.local.Release(ctx, rule, key)
	if !s.degraded.Load() {
		shared, err := s.redis.Release(ctx, rule, key)
		if err == nil {
			return merge(shared, local), lerr
		}
		if !unavailable(ctx, err) {
			return merge(shared, local), errors.Join(err, lerr)
		}
		s.fail(err)
	}
	s.mu.Lock()
	s.releases = append(s.releases, [2]string{rule, key})
	s.mu.Unlock()
	return local, lerr
}

// merge lists the blocks of a and those of b whose (rule, key) a lacks.
func merge(a, b []state.Block) []state.Block {
	seen := make(map[string]bool, len(a))
	for _, x := range a {
		seen[state.ID(x.Rule, x.Key)] = true
	}
	for _, x := range b {
		if !seen[state.ID(x.Rule, x.Key)] {
			a = append(a, x)
		}
	}
	sortBlocks(a)
	return a
}

// Record keeps an audit event in the local state file and sends it, in the
// background, to the fleet's trail in Redis with this MTA's name (events
// recorded while Redis is unreachable, the last state.MaxEvents of them,
// are sent when it is back).
func (s *Shared) Record(ev state.Event) {
	if ev.Time.IsZero() {
		ev.Time = s.redis.now()
	}
	ev.MTA = s.opts.Name
	s.local.Record(ev)
	s.events.add(ev)
}

// Events returns the fleet's most recent events, oldest first, each with
// its MTA's name (this daemon's own, from its state file, while Redis is
// unreachable). This daemon's events not sent yet are sent first.
func (s *Shared) Events(n int) []state.Event {
	if !s.degraded.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := s.flushEvents(ctx)
		if err == nil {
			var evs []state.Event
			if evs, err = s.redis.Events(ctx, n); err == nil {
				return evs
			}
		}
		s.fail(err)
	}
	return s.local.Events(n)
}

// Top returns the keys with the highest shared counts.
func (s *Shared) Top(n int) []state.KeyCount {
	if !s.degraded.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		top, err := s.redis.Top(ctx, n)
		cancel()
		if err == nil {
			return top
		}
		s.fail(err)
	}
	return s.local.Top(n)
}

// Stats reports the tracked keys and blocks: Redis's, or the local
// store's while Redis is unreachable.
func (s *Shared) Stats() state.Stats {
	if !s.degraded.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), s.redis.timeout)
		defer cancel()
		n, err := s.redis.Tracked(ctx)
		if err == nil {
			var b int
			if b, err = s.redis.blockCount(ctx); err == nil {
				return state.Stats{Windows: n, Blocks: b, Dirty: s.local.Stats().Dirty}
			}
		}
		s.fail(err)
	}
	return s.local.Stats()
}

// Close stops the reconnection, closes Redis's connections and the local
// state file.
func (s *Shared) Close() error {
	close(s.stop)
	s.done.Wait()
	return errors.Join(s.redis.Close(), s.local.Close())
}

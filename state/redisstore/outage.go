package redisstore

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loopbreaker/loopbreaker/state"
)

// This file is what Shared does when Redis becomes unreachable and when it
// is back: the fail modes, the outage (fail), the reconnection with backoff
// and the sync of what happened locally meanwhile.

// FailMode is what a daemon does while Redis is unreachable. Neither mode
// refuses mail because Redis is down.
type FailMode string

const (
	// FailOpen counts in the local state file meanwhile: the limits apply
	// to what this daemon sees, and the blocks it starts are pushed to
	// Redis when Redis is back. The default.
	FailOpen FailMode = "open"
	// FailPass counts nothing meanwhile: every message passes, except
	// under a block this daemon's state file still holds.
	FailPass FailMode = "pass"
)

// ParseFailMode checks a fail mode's name; "" is FailOpen.
func ParseFailMode(s string) (FailMode, error) {
	switch FailMode(s) {
	case "", FailOpen:
		return FailOpen, nil
	case FailPass:
		return FailPass, nil
	}
	return "", fmt.Errorf("bad Redis fail mode %q (open or pass)", s)
}

// redisLog sends go-redis's own messages (failed dials...) to the
// daemon's log at debug level: the outage itself is logged once.
// go-redis's logger is global: the last daemon's logger gets them.
type redisLog struct{}

var (
	redisLogger  atomic.Pointer[slog.Logger]
	redisLogOnce sync.Once
)

func (redisLog) Printf(ctx context.Context, format string, v ...any) {
	if l := redisLogger.Load(); l != nil {
		l.DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
	}
}

// fail marks the store degraded after err, once per outage.
func (s *Shared) fail(err error) {
	if !s.degraded.CompareAndSwap(false, true) {
		return
	}
	s.outages.Add(1)
	s.mu.Lock()
	s.since, s.lastErr = time.Now(), err.Error()
	s.mu.Unlock()
	mode := "counting in the local state file until it is back"
	if s.mode() == FailPass {
		mode = "letting mail through uncounted until it is back"
	}
	s.log.Error("Redis unreachable; "+mode, "redis", s.redis.Addr(), "err", err, "state", s.local.Path())
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// unavailable says whether err from Redis should degrade the store: not
// when the caller's own context ended.
func unavailable(ctx context.Context, err error) bool {
	return err != nil && ctx.Err() == nil
}

// reconnect waits for an outage and pings Redis with a doubling backoff
// until it answers and the local blocks are pushed.
func (s *Shared) reconnect() {
	defer s.done.Done()
	for {
		select {
		case <-s.stop:
			return
		case <-s.wake:
		}
		wait := s.opts.MinBackoff
		for s.degraded.Load() {
			select {
			case <-s.stop:
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, s.opts.MaxBackoff)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			err := s.redis.Ping(ctx)
			if err == nil {
				err = s.sync(ctx)
			}
			cancel()
			if err != nil {
				s.log.Debug("Redis still unreachable", "redis", s.redis.Addr(), "err", err, "retry_in", wait)
				continue
			}
			s.mu.Lock()
			since := s.since
			s.mu.Unlock()
			s.degraded.Store(false)
			s.log.Warn("Redis is back; counts and blocks are shared again", "redis", s.redis.Addr(), "outage", time.Since(since).Round(time.Millisecond))
			// The audit events recorded meanwhile.
			select {
			case s.events.kick <- struct{}{}:
			default:
			}
			// A block started locally while the first sync ran.
			ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
			if err := s.sync(ctx); err != nil {
				s.fail(err)
			}
			cancel()
		}
	}
}

// sync applies to Redis the releases made while it was unreachable and
// pushes the local blocks it does not have yet.
func (s *Shared) sync(ctx context.Context) error {
	s.mu.Lock()
	releases := s.releases
	s.releases = nil
	s.mu.Unlock()
	for i, rk := range releases {
		if _, err := s.redis.Release(ctx, rk[0], rk[1]); err != nil {
			s.mu.Lock()
			s.releases = append(releases[i:], s.releases...)
			s.mu.Unlock()
			return err
		}
	}
	n := 0
	for _, b := range s.local.Blocks() {
		id := state.ID(b.Rule, b.Key)
		s.mu.Lock()
		done := s.pushed[id].Equal(b.Since)
		s.mu.Unlock()
		if done {
			continue
		}
		if err := s.redis.Push(ctx, b); err != nil {
			return fmt.Errorf("pushing the local block %s %s: %w", b.Rule, b.Key, err)
		}
		s.mu.Lock()
		s.pushed[id] = b.Since
		s.mu.Unlock()
		n++
		s.log.Info("local block pushed to Redis", "rule", b.Rule, "key", b.Key, "until", b.Until, "acted_on", b.Count)
	}
	if len(releases) > 0 || n > 0 {
		s.log.Info("synced with Redis", "releases", len(releases), "blocks_pushed", n)
	}
	return nil
}

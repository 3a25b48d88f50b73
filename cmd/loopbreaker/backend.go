package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/loopbreaker/loopbreaker/loopdetect/policy"
	"github.com/loopbreaker/loopbreaker/state"
	"github.com/loopbreaker/loopbreaker/state/redisstore"
)

// moveTimeout bounds a reload's move of the state to another backend: the
// new Redis's answer and the blocks carried to it. Messages wait for the
// move (state.Switch), so it must be short.
const moveTimeout = 10 * time.Second

// stateBackend is the daemon's state backend (the state file alone, or
// Redis shared with the other daemons of the fleet, the file as its
// fallback) behind a state.Switch, so that a reload can move it: a
// policy whose redis changed moves the state to the new Redis (or back to
// the file alone) with the blocks in force, or is refused with the reason,
// the running policy and backend staying. -redis and -redis-fail-mode on
// the command line win over the policy, at start and across reloads.
type stateBackend struct {
	*state.Switch
	// name is the daemon's name on its events in the fleet's audit trail
	// (serve -name, else the host's name).
	name string
	// local is the state file: the backend itself, or Redis's fallback;
	// every move keeps it.
	local *state.Store
	f     *serveFlags
	log   *slog.Logger

	mu        sync.Mutex // one reload at a time
	url, mode string     // the Redis URL ("" for the file alone) and fail mode in force
	policyURL string     // the policy's redis at the last load, to log a change -redis overrides
}

// daemonName is serve -name, else the host's name.
func daemonName(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	host, _ := os.Hostname()
	return host
}

// redisChoice is the Redis URL and fail mode the daemon runs with: the
// command line's, else the policy's.
func redisChoice(f *serveFlags, p *policy.Policy) (url, mode string) {
	url, mode = f.redis, f.redisFailMode
	if url == "" {
		url = p.Redis
	}
	if mode == "" {
		mode = p.RedisFailMode
	}
	return url, mode
}

// openBackend opens the state file and the Redis the command line or the
// policy names (openState) behind a Switch.
func openBackend(path string, f *serveFlags, p *policy.Policy, log *slog.Logger) (*stateBackend, error) {
	st, err := openState(path, f, p, log)
	if err != nil {
		return nil, err
	}
	local, _ := st.(*state.Store)
	if sh, ok := st.(*redisstore.Shared); ok {
		local = sh.Local()
	}
	url, mode := redisChoice(f, p)
	return &stateBackend{Switch: state.NewSwitch(st), name: daemonName(f.name), local: local, f: f, log: log,
		url: url, mode: mode, policyURL: p.Redis}, nil
}

// Health is the state file's health (failed writes), whichever backend is
// in force: the metrics' loopbreaker_state_write_errors_total.
func (b *stateBackend) Health() state.Health { return b.local.Health() }

// where says where the state is, for the log: a Redis URL without its
// password, or the file alone.
func where(url string) string {
	if url == "" {
		return "the state file alone"
	}
	return "Redis " + redisstore.Redact(url)
}

// reload moves the state to the Redis the new policy p names, or to the
// file alone, unless the command line's -redis wins (logged) or nothing
// changed. An error refuses the reload: the backend in force stays.
func (b *stateBackend) reload(ctx context.Context, p *policy.Policy) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	url, mode := redisChoice(b.f, p)
	if b.f.redis != "" && p.Redis != b.policyURL {
		b.log.Warn("the policy's redis changed but -redis on the command line wins; the state stays where it is",
			"policy_redis", redisstore.Redact(p.Redis), "redis", redisstore.Redact(b.f.redis))
	}
	b.policyURL = p.Redis
	failMode, err := redisstore.ParseFailMode(mode)
	if err != nil {
		return err
	}
	if url == b.url {
		if mode != b.mode {
			if sh, ok := b.Current().(*redisstore.Shared); ok {
				sh.SetFailMode(failMode)
				b.log.Info("Redis fail mode changed", "fail_mode", string(failMode))
			}
			b.mode = mode
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, moveTimeout)
	defer cancel()
	// Connect before the move, so that a URL that does not parse or a
	// Redis that does not answer is refused before any message waits.
	var r *redisstore.Redis
	if url != "" {
		if r, err = redisstore.New(url, redisstore.Options{}); err == nil {
			if err = r.Ping(ctx); err != nil {
				err = errors.Join(fmt.Errorf("%s does not answer: %w", where(url), err), r.Close())
			}
		}
		if err != nil {
			return fmt.Errorf("the state stays in %s: %w", where(b.url), err)
		}
	}
	sopts := redisstore.SharedOptions{FailMode: failMode, Logger: b.log, Name: b.name}
	stats, err := b.Move(ctx, func(ctx context.Context, cur state.Backend) (state.Backend, error) {
		return redisstore.Move(ctx, cur, r, sopts)
	})
	if err != nil {
		if r != nil {
			err = errors.Join(err, r.Close())
		}
		return fmt.Errorf("the state stays in %s: %w", where(b.url), err)
	}
	b.log.Info("state moved", "from", where(b.url), "to", where(url), "blocks", len(b.Blocks()),
		"drain", stats.Drain.Round(time.Microsecond), "messages_held_up_to", stats.Held.Round(time.Microsecond))
	b.url, b.mode = url, mode
	return nil
}

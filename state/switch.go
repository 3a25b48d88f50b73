package state

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Switch is the daemon's Backend when a reload may move its state to
// another backend (from the state file alone to Redis, from one Redis to
// another, from Redis back to the file) without a restart. It delegates
// every call to the backend in force; Move replaces that backend.
//
// Each call holds a read lock for its length; Move takes the write lock,
// so the calls in progress (a Hit counting in the old Redis) finish first
// and the calls that arrive meanwhile wait until the new backend is in
// force: no message is counted in a backend that is being left, and none
// fails because of the move. The wait is the drain of the calls in
// progress plus the move itself (pushing the blocks in force); Move
// returns both. It is safe for concurrent use.
type Switch struct {
	mu  sync.RWMutex
	cur Backend
}

var _ Backend = (*Switch)(nil)

// NewSwitch returns a Switch over b.
func NewSwitch(b Backend) *Switch { return &Switch{cur: b} }

// Current is the backend in force.
func (s *Switch) Current() Backend { return in(s, func(b Backend) Backend { return b }) }

// MoveStats says how long a Move held the calls back.
type MoveStats struct {
	// Drain is the wait for the calls in progress to finish.
	Drain time.Duration
	// Held is how long the calls that arrived during the Move waited at
	// most: the drain and the move together.
	Held time.Duration
}

// Move waits for the calls in progress, holds the new ones back and runs
// move with the backend in force; the backend move returns is in force
// from then on. When move fails, the backend in force stays (move must
// leave it usable) and the calls go on with it. move is the one to carry
// the blocks over and to let go of the old backend; it must not call the
// Switch, whose lock it runs under.
func (s *Switch) Move(ctx context.Context, move func(ctx context.Context, cur Backend) (Backend, error)) (MoveStats, error) {
	start := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := MoveStats{Drain: time.Since(start)}
	next, err := move(ctx, s.cur)
	st.Held = time.Since(start)
	if err != nil {
		return st, err
	}
	if next == nil {
		return st, errors.New("state: move returned no backend")
	}
	s.cur = next
	return st, nil
}

// in runs f on the backend in force under the read lock: a Move waits for
// it, and it waits for a Move.
func in[T any](s *Switch, f func(Backend) T) T {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return f(s.cur)
}

// Hit counts in the backend in force.
func (s *Switch) Hit(ctx context.Context, r Request) (Result, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.Hit(ctx, r)
}

// Blocked reports the block in force for (rule, key).
func (s *Switch) Blocked(rule, key string) (Block, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.Blocked(rule, key)
}

// Count reports the count for (rule, key).
func (s *Switch) Count(rule, key string) int {
	return in(s, func(b Backend) int { return b.Count(rule, key) })
}

// Blocks lists the blocks in force.
func (s *Switch) Blocks() []Block { return in(s, Backend.Blocks) }

// Release lifts the matching blocks.
func (s *Switch) Release(ctx context.Context, rule, key string) ([]Block, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.Release(ctx, rule, key)
}

// Record appends an event to the audit trail.
func (s *Switch) Record(ev Event) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.cur.Record(ev)
}

// Events returns the most recent events.
func (s *Switch) Events(n int) []Event { return in(s, func(b Backend) []Event { return b.Events(n) }) }

// Top returns the keys with the highest counts.
func (s *Switch) Top(n int) []KeyCount { return in(s, func(b Backend) []KeyCount { return b.Top(n) }) }

// Stats reports the tracked keys and blocks.
func (s *Switch) Stats() Stats { return in(s, Backend.Stats) }

// BackendStatus describes the backend in force.
func (s *Switch) BackendStatus() BackendStatus { return in(s, Backend.BackendStatus) }

// Close closes the backend in force.
func (s *Switch) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur.Close()
}

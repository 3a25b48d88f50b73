package state

import (
	"context"
	"time"
)

// Backend is what the daemon needs of its state: *Store (the embedded bbolt
// file) and redisstore.Shared (Redis, shared by several daemons, with a
// Store to fall back on) implement it.
type Backend interface {
	Hit(ctx context.Context, r Request) (Result, error)
	Blocked(rule, key string) (Block, bool)
	Count(rule, key string) int
	Blocks() []Block
	Release(ctx context.Context, rule, key string) ([]Block, error)
	Record(ev Event)
	Events(n int) []Event
	Top(n int) []KeyCount
	Stats() Stats
	// BackendStatus says what holds the state and whether it is degraded.
	BackendStatus() BackendStatus
	Close() error
}

var _ Backend = (*Store)(nil)

// BackendStatus describes the backend in force, for `loopbreaker status`
// and the metrics.
type BackendStatus struct {
	// Name is "bbolt" or "redis".
	Name string `json:"name"`
	// Address is where the shared state lives (a Redis URL without its
	// password); empty for bbolt.
	Address string `json:"address,omitempty"`
	// Degraded says the shared state is unreachable and the daemon counts
	// in its local state file (or not at all, by FailMode) until it is back.
	Degraded bool `json:"degraded,omitempty"`
	// DegradedSince is when the current outage began.
	DegradedSince time.Time `json:"degraded_since,omitzero"`
	// LastError is the error that began the current outage.
	LastError string `json:"last_error,omitempty"`
	// FailMode is what the daemon does while degraded.
	FailMode string `json:"fail_mode,omitempty"`
	// Outages counts the times the shared state became unreachable;
	// Fallbacks the counts taken locally (or skipped) meanwhile.
	Outages   uint64 `json:"outages,omitempty"`
	Fallbacks uint64 `json:"fallbacks,omitempty"`
}

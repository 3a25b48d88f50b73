package state

import (
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Health says whether the state file takes writes. When it does not (a full
// disk, a file system gone read-only, an I/O error), the daemon fails open:
// counts stay in memory, a new block is in force in memory only (and lost
// at a restart), mail flows; `loopbreaker status` shows it as degraded and
// loopbreaker_state_write_errors_total counts the failed writes.
type Health struct {
	// Degraded is true from a failed write to the next successful one.
	Degraded bool `json:"degraded"`
	// Since is when the current run of failures began.
	Since time.Time `json:"since,omitzero"`
	// LastError is the last write's error while degraded.
	LastError string `json:"last_error,omitempty"`
	// WriteErrors counts the failed writes since the start.
	WriteErrors uint64 `json:"write_errors,omitempty"`
}

type healthState struct {
	mu sync.Mutex
	h  Health
	// broken is set when bbolt panicked in a write: it leaves its writer
	// lock held, so no later write may start (it would wait forever).
	broken error
}

// noteWrite records the outcome of a write to the file.
func (s *Store) noteWrite(err error) {
	s.health.mu.Lock()
	defer s.health.mu.Unlock()
	h := &s.health.h
	if err == nil {
		if h.Degraded {
			s.log.Info("state file takes writes again", "failed_writes", h.WriteErrors)
		}
		h.Degraded, h.Since, h.LastError = false, time.Time{}, ""
		return
	}
	h.WriteErrors++
	h.LastError = err.Error()
	if !h.Degraded {
		h.Degraded, h.Since = true, s.now()
	}
}

// Health reports whether the state file takes writes.
func (s *Store) Health() Health {
	s.health.mu.Lock()
	defer s.health.mu.Unlock()
	return s.health.h
}

// BackendStatus describes the bbolt file for `loopbreaker status` and the
// metrics: degraded while it takes no writes.
func (s *Store) BackendStatus() BackendStatus {
	h := s.Health()
	st := BackendStatus{Name: "bbolt", Degraded: h.Degraded}
	if h.Degraded {
		st.DegradedSince, st.LastError = h.Since, h.LastError
	}
	return st
}

// ErrCorrupt is returned by Open for a file that is not a bbolt database
// or whose pages are damaged.
var ErrCorrupt = errors.New("the state file is damaged or is not a loopbreaker state file")

// corrupt wraps what bbolt said about a damaged file with the way out.
func corrupt(path string, cause any) error {
	return fmt.Errorf("%w (%v).\nTo start fresh, move it aside and start again: mv %s %s.corrupt\n"+
		"The policy is in its own file and stays as it is; counts, blocks and the audit trail start empty", ErrCorrupt, cause, path, path)
}

// openBolt opens the bbolt file, turning bbolt's errors and panics on a
// damaged file (it panics on a damaged freelist page, for one) into
// ErrCorrupt.
func openBolt(path string, timeout time.Duration) (db *bolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, corrupt(path, r)
		}
	}()
	db, err = bolt.Open(path, 0o640, &bolt.Options{Timeout: timeout})
	if errors.Is(err, bolterrors.ErrInvalid) || errors.Is(err, bolterrors.ErrVersionMismatch) || errors.Is(err, bolterrors.ErrChecksum) {
		return nil, corrupt(path, err)
	}
	return db, err
}

// loadChecked is load, with bbolt's panics on damaged pages turned into
// ErrCorrupt.
func (s *Store) loadChecked() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = corrupt(s.path, r)
		}
	}()
	return s.load()
}

// boltUpdate is bbolt's Update, with a panic on a page found damaged while
// the daemon runs turned into ErrCorrupt: the write fails (mail flows, the
// state is degraded) instead of the daemon. bbolt rolls the transaction
// back before the panic leaves Update.
//
// A panic leaves bbolt's writer lock held, so the store stops writing for
// good: counts and blocks stay in memory (fail open) until a restart, which
// then reports the damage with the way out.
func (s *Store) boltUpdate(f func(*bolt.Tx) error) (err error) {
	if err := s.brokenErr(); err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			err = corrupt(s.path, r)
			s.health.mu.Lock()
			s.health.broken = err
			s.health.mu.Unlock()
			s.log.Error("state file damaged while running; counting in memory until a restart", "err", err)
		}
	}()
	return s.db.Update(f)
}

// brokenErr is the error that stopped all writes, or nil.
func (s *Store) brokenErr() error {
	s.health.mu.Lock()
	defer s.health.mu.Unlock()
	return s.health.broken
}

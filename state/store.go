// Package state owns loopbreaker's state on one host: the sliding windows
// of recent hits per rule and key (window.go), the blocks in force
// (block.go) and the audit trail of the last MaxEvents decisions
// (events.go). All three live in memory, where they are the authority while
// the daemon runs, and in an embedded bbolt file that carries them over a
// restart.
//
// The windows that changed, the block counters and the new audit events
// are written to the file by Flush, every DefaultFlushInterval (a second)
// in the background, in transactions of at most 10,000 keys, one fsync each
// rather than one per message, so a crash loses at most about the last
// interval of counts. A block is different: Hit commits a new block to the
// file before it returns, so a block that was acted on survives kill -9.
// Sweep drops the windows with no hit left in them and the ended blocks,
// every DefaultSweepInterval (a minute). A write that fails leaves the
// store degraded but counting in memory (health.go).
//
// Memory: a tracked key costs about 80 bytes at a million keys (one map
// entry per rule and key, its value one word; see ruleState), and nothing in
// it is a pointer per key for the garbage collector but the key string. A
// sweep that leaves a map less than half full remakes it (sweep.go); the
// file's pages are unmapped after reading (pages.go); the daemon runs
// KeepMemoryLimit. At 1M keys the RSS stays under 175 MB through filling,
// churn, flushes, sweeps and a restart (docs/scaling.md, rss_test.go).
package state

// The files of the package, by concept:
//
//	store.go    Store, Options, Open and Close, the background loops
//	window.go   a rule's windows in memory (ruleState, slot), their encoding
//	block.go    Block, ID, ClipSubject, the block's encoding
//	hit.go      Hit: counting, the limit check, a new block's commit
//	lookup.go   reading without counting: Blocked, Count, Blocks, Stats
//	top.go      Top: the keys with the highest counts
//	release.go  Release: lifting blocks
//	events.go   the audit trail: Record, Events
//	file.go     the file's buckets and keys, its write transactions
//	load.go     reading the file at Open
//	flush.go    Flush: writing what changed
//	sweep.go    Sweep: dropping what expired
//	health.go   Health: whether the file takes writes; a damaged file
//	backend.go  Backend: what the daemon needs of this store or Redis's
//	switch.go   Switch: a Backend a reload can move to another backend
//	adopt.go    Adopt: taking the blocks of the Redis a reload leaves
//	pages.go    unmapping the file's pages that reads touched (RSS)
//	memlimit.go KeepMemoryLimit: a soft memory limit for the daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/loopbreaker/loopbreaker/state/internal/every"
)

// Defaults for Options.
const (
	DefaultFlushInterval = time.Second
	DefaultOpenTimeout   = 3 * time.Second
	DefaultSweepInterval = time.Minute
	// MaxSamples is how many subjects a block keeps for the admin.
	MaxSamples = 5
	// maxSubject bounds one sample subject.
	maxSubject = 200
)

// ErrLocked is returned by Open when another process holds the state file.
var ErrLocked = errors.New("state file is locked by another process")

// Options configure a Store. The zero value is usable.
type Options struct {
	// Now is the clock; time.Now when nil. Tests inject their own.
	Now func() time.Time
	// FlushInterval is how often dirty counts are written; DefaultFlushInterval when zero.
	// A negative value disables the background flusher (tests call Flush).
	FlushInterval time.Duration
	// SweepInterval is how often expired counts and blocks are dropped; DefaultSweepInterval when zero.
	// A negative value disables the background sweeper (tests call Sweep).
	SweepInterval time.Duration
	// OpenTimeout bounds the wait for the file lock; DefaultOpenTimeout when zero.
	OpenTimeout time.Duration
	// Logger receives flush errors, unreadable records dropped at Open and
	// the file's health changes; slog.Default() when nil.
	Logger *slog.Logger
}

// Store is the state of all rules: windows of recent hits and blocks.
// It is safe for concurrent use.
type Store struct {
	db   *bolt.DB
	now  func() time.Time
	log  *slog.Logger
	path string

	// wmu orders the writers of the file (a flush batch, Release, a new
	// block) so that a flush batch encoded before a release cannot put back
	// on disk what the release deleted. Take wmu before mu, never the other
	// way. fmu lets one Flush run at a time.
	fmu   sync.Mutex
	wmu   sync.Mutex
	mu    sync.Mutex
	rules map[string]*ruleState
	// dirty lists the windows changed since the last flush, each once
	// (the slot's dirty bit says whether it is listed); an entry whose
	// window is gone by the flush is skipped.
	dirty []ruleKey
	// gone lists windows and blocks dropped from memory, to delete from
	// the file unless they are back by the flush.
	gone []ruleKey

	events        []Event // the audit trail, newest last (up to 2*MaxEvents)
	pendingEvents []Event // not yet in the file
	eventSeq      uint64

	stop chan struct{}
	done sync.WaitGroup

	health healthState // health.go
}

// ruleKey names a key of a rule in the dirty and gone lists.
type ruleKey struct {
	rs  *ruleState
	key string
}

func (k ruleKey) id() string { return ID(k.rs.name, k.key) }

// rule returns the rule's state, creating it. Call with mu held.
func (s *Store) rule(name string) *ruleState {
	rs := s.rules[name]
	if rs == nil {
		rs = newRuleState(name)
		s.rules[name] = rs
	}
	return rs
}

// Open opens or creates the state file at path and loads what is still in
// force. It fails with ErrLocked, within OpenTimeout, when another process
// holds the file.
func Open(path string, opts Options) (*Store, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.OpenTimeout == 0 {
		opts.OpenTimeout = DefaultOpenTimeout
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("creating state directory: %w", err)
		}
	}
	db, err := openBolt(path, opts.OpenTimeout) // health.go: ErrCorrupt for a damaged file
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("opening state file %s: %w (waited %s)", path, ErrLocked, opts.OpenTimeout)
		}
		return nil, fmt.Errorf("opening state file %s: %w", path, err)
	}
	s := &Store{
		db:    db,
		now:   opts.Now,
		log:   opts.Logger,
		path:  path,
		rules: make(map[string]*ruleState),
		stop:  make(chan struct{}),
	}
	if err := s.loadChecked(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("loading state file %s: %w", path, err)
	}
	s.startLoop(opts.FlushInterval, DefaultFlushInterval, s.flushLogged)
	s.startLoop(opts.SweepInterval, DefaultSweepInterval, s.Sweep)
	return s, nil
}

// startLoop runs f every interval (def when zero, never when negative)
// until Close.
func (s *Store) startLoop(interval, def time.Duration, f func()) {
	if interval < 0 {
		return
	}
	if interval == 0 {
		interval = def
	}
	s.done.Go(func() { every.Run(s.stop, interval, f) })
}

// Path is the state file's path.
func (s *Store) Path() string { return s.path }

// Close stops the background work, writes the last counts and closes the file.
func (s *Store) Close() error {
	close(s.stop)
	s.done.Wait()
	ferr := s.Flush()
	if err := s.brokenErr(); err != nil {
		// bbolt's writer lock is held since its panic: Close would wait
		// for it forever. The process is ending; the file stays as it is.
		return err
	}
	cerr := s.db.Close()
	return errors.Join(ferr, cerr)
}

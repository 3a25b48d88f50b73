// Package state keeps the sliding-window counts and the blocks of loopbreaker
// in an embedded bbolt file.
//
// The counts live in memory and are the authority while the daemon runs; the
// ones that changed are written to the file every flush interval, in
// transactions of at most 10,000 keys (one fsync each, not one per
// message), so a crash loses at most about the last interval of counts. A
// block is different: it is committed to the file before the caller acts on
// it, so a block that was acted on survives kill -9.
//
// Memory: a tracked key costs about 80 bytes at a million keys (one map
// entry per rule and key, its value one word; see ruleState), and nothing in
// it is a pointer per key for the garbage collector but the key string.
package state

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
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

var (
	bucketCounts = []byte("counts")
	bucketBlocks = []byte("blocks")
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
	// Logger receives flush and sweep errors; slog.Default() when nil.
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

// flushBatch is how many keys one flush transaction writes at most: a flush
// of many scattered keys in one transaction copies most of bbolt's tree
// into memory at once.
const flushBatch = 10_000

// countsFillPercent is how full the flush fills the counts bucket's pages.
const countsFillPercent = 0.9

// sweepSlice is how many keys Sweep looks at per hold of the store's lock,
// lockSlice how many Flush copies.
const (
	sweepSlice = 10_000
	lockSlice  = 1000
)

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
	s.startLoop(opts.SweepInterval, DefaultSweepInterval, s.sweepLogged)
	return s, nil
}

func (s *Store) startLoop(every, def time.Duration, f func()) {
	if every < 0 {
		return
	}
	if every == 0 {
		every = def
	}
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				f()
			}
		}
	}()
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

// load reads what is still in force at start. It reads in one read-only
// transaction (which copies nothing) and deletes what has expired in
// transactions of at most flushBatch keys.
func (s *Store) load() error {
	now := s.now()
	nowMs := now.UnixMilli()
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketCounts, bucketBlocks, bucketEvents} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("creating bucket %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	var staleCounts, staleBlocks [][]byte
	err = s.db.View(func(tx *bolt.Tx) error {
		// Size each rule's map first: a map grown one key at a time
		// leaves its old tables to the GC and ends up with more room
		// than it needs (measured: 55 against 30-odd bytes per key at
		// 1M keys).
		sizes := make(map[string]int)
		c := tx.Bucket(bucketCounts).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if i := bytes.IndexByte(k, 0); i >= 0 {
				sizes[string(k[:i])]++
			}
		}
		for name, n := range sizes {
			rs := s.rule(name)
			rs.windows = make(map[string]slot, n)
		}
		var times []int64 // reused: restore copies what it keeps
		var rs *ruleState
		err := tx.Bucket(bucketCounts).ForEach(func(k, v []byte) error {
			i := bytes.IndexByte(k, 0)
			var span int64
			var err error
			if i >= 0 {
				span, times, err = decodeWindow(v, times[:0])
			}
			if i < 0 || err != nil {
				// A damaged record costs one key's count, not the daemon.
				s.log.Warn("dropping unreadable count record", "key", string(k), "err", err)
				staleCounts = append(staleCounts, append([]byte(nil), k...))
				return nil
			}
			if rs == nil || rs.name != string(k[:i]) {
				rs = s.rule(string(k[:i]))
			}
			rs.span = max(span, 1)
			if !rs.restore(k[i+1:], times, nowMs) {
				staleCounts = append(staleCounts, append([]byte(nil), k...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.Bucket(bucketBlocks).ForEach(func(k, v []byte) error {
			rule, key, ok := splitIDBytes(k)
			b, err := decodeBlock(v)
			if !ok || err != nil || !b.activeAt(now) {
				staleBlocks = append(staleBlocks, append([]byte(nil), k...))
				return nil
			}
			s.rule(rule).blocks[key] = b
			return nil
		})
		if err != nil {
			return err
		}
		s.events, s.eventSeq = loadEvents(tx)
		return nil
	})
	if err != nil {
		return err
	}
	for len(staleCounts) > 0 || len(staleBlocks) > 0 {
		nc, nb := min(len(staleCounts), flushBatch), min(len(staleBlocks), flushBatch)
		err := s.db.Update(func(tx *bolt.Tx) error {
			for _, k := range staleCounts[:nc] {
				if err := tx.Bucket(bucketCounts).Delete(k); err != nil {
					return err
				}
			}
			for _, k := range staleBlocks[:nb] {
				if err := tx.Bucket(bucketBlocks).Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		staleCounts, staleBlocks = staleCounts[nc:], staleBlocks[nb:]
	}
	return nil
}

// fileKey is ID(rule, key) as the file's key.
func fileKey(rule, key string) []byte {
	b := make([]byte, 0, len(rule)+1+len(key))
	return append(append(append(b, rule...), 0), key...)
}

// splitIDBytes splits a file key into rule and key, each a string of its
// own (the key is stored: it must not keep the rule's bytes alive).
func splitIDBytes(id []byte) (rule, key string, ok bool) {
	i := bytes.IndexByte(id, 0)
	if i < 0 {
		return "", "", false
	}
	return string(id[:i]), string(id[i+1:]), true
}

// Request is one counted event for one rule and key.
type Request struct {
	Rule   string
	Key    string
	Window time.Duration
	// Limit is how many events the window lets through; the (Limit+1)th
	// starts a block.
	Limit int
	// BlockFor is how long a block lasts once started.
	BlockFor time.Duration
	// Subject is kept as a sample on the block, for the admin.
	Subject string
}

// Result is what Hit decided.
type Result struct {
	// Count is the number of events in the window, this one included
	// (capped at Limit+1: older hits beyond that are not kept).
	Count int
	// Blocked says the event falls under a block and is to be acted on.
	Blocked bool
	// NewBlock says this event started the block.
	NewBlock bool
	// Block is a copy of the block in force, when Blocked.
	Block Block
}

// Hit counts one event and reports whether it is blocked. Counting and the
// limit check are one atomic step, so with any number of concurrent callers
// exactly Limit events of a storm pass. A block that this call starts is
// committed to the file before Hit returns.
func (s *Store) Hit(ctx context.Context, r Request) (Result, error) {
	if r.Limit < 0 || r.Window <= 0 {
		return Result{}, fmt.Errorf("state: invalid request for rule %q: limit %d window %s", r.Rule, r.Limit, r.Window)
	}
	now := s.now()
	span := max(r.Window.Milliseconds(), 1)
	key := strings.Clone(r.Key) // allocated before the lock is taken

	s.mu.Lock()
	rs := s.rule(r.Rule)
	rs.span = span
	count, marked := rs.add(r.Key, key, now.UnixMilli(), r.Limit)
	if marked {
		s.dirty = append(s.dirty, ruleKey{rs, key})
	}

	if b := rs.blocks[key]; b != nil && b.activeAt(now) {
		b.Count++
		b.addSample(r.Subject)
		res := Result{Count: count, Blocked: true, Block: b.clone()}
		s.mu.Unlock()
		return res, nil
	}
	if count <= r.Limit {
		s.mu.Unlock()
		return Result{Count: count}, nil
	}
	b := &Block{
		Rule:   r.Rule,
		Key:    key,
		Since:  now,
		Until:  now.Add(r.BlockFor),
		Count:  1,
		Limit:  r.Limit,
		Window: r.Window,
	}
	b.addSample(r.Subject)
	rs.blocks[key] = b
	res := Result{Count: count, Blocked: true, NewBlock: true, Block: b.clone()}
	s.mu.Unlock()

	// Durable before anyone acts on it. Other messages already see the block
	// in memory, so exactness does not wait for the disk.
	if err := s.putBlock(ctx, rs, key, b); err != nil {
		return res, fmt.Errorf("committing block %s: %w", ID(r.Rule, key), err)
	}
	return res, nil
}

// Blocked reports the block in force for (rule, key) without counting.
func (s *Store) Blocked(rule, key string) (Block, bool) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := s.rules[rule]
	if rs == nil {
		return Block{}, false
	}
	b := rs.blocks[key]
	if b == nil || !b.activeAt(now) {
		return Block{}, false
	}
	return b.clone(), true
}

// Count reports the current count for (rule, key) without counting.
func (s *Store) Count(rule, key string) int {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if rs := s.rules[rule]; rs != nil {
		return rs.count(key, now.UnixMilli())
	}
	return 0
}

// Blocks lists the blocks in force, oldest first.
func (s *Store) Blocks() []Block {
	now := s.now()
	s.mu.Lock()
	var out []Block
	for _, rs := range s.rules {
		for _, b := range rs.blocks {
			if b.activeAt(now) {
				out = append(out, b.clone())
			}
		}
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Since.Equal(out[j].Since) {
			return out[i].Since.Before(out[j].Since)
		}
		return ID(out[i].Rule, out[i].Key) < ID(out[j].Rule, out[j].Key)
	})
	return out
}

// Release lifts the blocks that match: rule and key both given lift one;
// an empty rule lifts that key in every rule; an empty key lifts every block
// of the rule. It also clears their windows, so the next message starts a
// fresh count. It returns the blocks lifted.
func (s *Store) Release(ctx context.Context, rule, key string) ([]Block, error) {
	if rule == "" && key == "" {
		return nil, errors.New("state: release needs a rule or a key")
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	var ids []string
	var lifted []Block
	for name, rs := range s.rules {
		if rule != "" && name != rule {
			continue
		}
		for k, b := range rs.blocks {
			if key != "" && k != key {
				continue
			}
			ids = append(ids, ID(name, k))
			lifted = append(lifted, b.clone())
			delete(rs.blocks, k)
			// A dirty entry for it is skipped by the flush once the
			// window is gone.
			rs.remove(k)
		}
	}
	s.mu.Unlock()
	if len(ids) == 0 {
		return nil, nil
	}
	err := s.update(ctx, func(tx *bolt.Tx) error {
		for _, id := range ids {
			if err := tx.Bucket(bucketBlocks).Delete([]byte(id)); err != nil {
				return err
			}
			if err := tx.Bucket(bucketCounts).Delete([]byte(id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return lifted, fmt.Errorf("committing release: %w", err)
	}
	return lifted, nil
}

// Stats is a snapshot of the store's size.
type Stats struct {
	Windows int
	Blocks  int
	// Dirty is how many windows wait for the flush (at most: a window
	// released or swept since it changed is counted until the flush).
	Dirty int
}

// Stats reports how many keys are tracked.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Dirty: len(s.dirty)}
	for _, rs := range s.rules {
		st.Windows += len(rs.windows)
		st.Blocks += len(rs.blocks)
	}
	return st
}

// putBlock commits b unless it was released in the meantime.
func (s *Store) putBlock(ctx context.Context, rs *ruleState, key string, b *Block) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	current := rs.blocks[key] == b
	v, err := encodeBlock(b)
	s.mu.Unlock()
	if err != nil || !current {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBlocks).Put([]byte(ID(rs.name, key)), v)
	})
}

// update runs one write transaction unless ctx is already done.
func (s *Store) update(ctx context.Context, f func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.boltUpdate(f)
	s.noteWrite(err)
	return err
}

// Flush writes the counts and block counters changed since the last flush,
// the deletions of what expired or was swept, and the new audit events. It
// writes in transactions of at most flushBatch keys, in key order; each
// batch is encoded under the store's lock and written before another writer
// of the file (a release, a new block) runs, so the lock is held for one
// batch's encoding at a time and a new block waits for one batch at most.
func (s *Store) Flush() error {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	s.mu.Lock()
	dirty, gone := s.dirty, s.gone
	s.dirty, s.gone = nil, nil
	evs, lastSeq := s.pendingEvents, s.eventSeq
	s.pendingEvents = nil
	s.mu.Unlock()
	if len(dirty) == 0 && len(gone) == 0 && len(evs) == 0 {
		return nil
	}

	// Sorted keys make bbolt's page writes sequential and let each batch
	// touch one stretch of the tree.
	byID := func(a, b ruleKey) int {
		if c := strings.Compare(a.rs.name, b.rs.name); c != 0 {
			return c
		}
		return strings.Compare(a.key, b.key)
	}
	slices.SortFunc(dirty, byID)
	slices.SortFunc(gone, byID)

	if len(evs) == 0 {
		evs = nil
	}
	var (
		snaps    = make([]windowSnap, 0, min(len(dirty), flushBatch))
		olderBuf = make([]int64, 0, 1024)
		dels     []goneKey
		written  int
	)
	for i, j := 0, 0; i < len(dirty) || j < len(gone) || evs != nil; {
		j0 := j
		// One transaction of at most flushBatch keys; the writers of the
		// file wait for it, the messages only for each slice of lockSlice
		// keys copied under the store's lock (allocating nothing, so that
		// the lock is never held for a GC assist).
		s.wmu.Lock()
		snaps, olderBuf, dels = snaps[:0], olderBuf[:0], dels[:0]
		for n := 0; n < flushBatch && (i < len(dirty) || j < len(gone)); {
			s.mu.Lock()
			for k := 0; k < lockSlice && n < flushBatch && i < len(dirty); k, i = k+1, i+1 {
				d := dirty[i]
				v, ok := d.rs.windows[d.key]
				if !ok || !v.dirty() {
					continue // released, swept, or already written from a duplicate entry
				}
				n++
				start := len(olderBuf)
				olderBuf = d.rs.older(olderBuf, d.key, v)
				sn := windowSnap{rk: d, v: v, span: d.rs.span, older: [2]int{start, len(olderBuf)}}
				if b := d.rs.blocks[d.key]; b != nil {
					sn.block = b.snapshot()
				}
				d.rs.windows[d.key] = v &^ slotDirty
				snaps = append(snaps, sn)
			}
			// A gone key may have come back since it was listed; delete
			// from the file only what memory no longer holds.
			for k := 0; k < lockSlice && n < flushBatch && j < len(gone); k, j = k+1, j+1 {
				g := gone[j]
				_, w := g.rs.windows[g.key]
				_, b := g.rs.blocks[g.key]
				if !w || !b {
					n++
					dels = append(dels, goneKey{rk: g, window: !w, block: !b})
				}
			}
			s.mu.Unlock()
		}
		var err error
		if len(snaps) > 0 || len(dels) > 0 || evs != nil {
			err = s.boltUpdate(func(tx *bolt.Tx) error {
				counts, blocks := tx.Bucket(bucketCounts), tx.Bucket(bucketBlocks)
				// Keys are written once and rarely grow: fuller pages
				// make a file (and a mapped file at start) about 40 %
				// smaller than bbolt's default of half-full pages.
				counts.FillPercent = countsFillPercent
				for _, sn := range snaps {
					id := fileKey(sn.rk.rs.name, sn.rk.key)
					if err := counts.Put(id, encodeWindow(sn.span, olderBuf[sn.older[0]:sn.older[1]], sn.v.last())); err != nil {
						return err
					}
					if sn.block != nil {
						v, err := encodeBlock(sn.block)
						if err != nil {
							return err
						}
						if err := blocks.Put(id, v); err != nil {
							return err
						}
					}
				}
				for _, d := range dels {
					id := fileKey(d.rk.rs.name, d.rk.key)
					if d.window {
						if err := counts.Delete(id); err != nil {
							return err
						}
					}
					if d.block {
						if err := blocks.Delete(id); err != nil {
							return err
						}
					}
				}
				if evs == nil {
					return nil
				}
				return writeEvents(tx, evs, lastSeq)
			})
		}
		s.wmu.Unlock()
		if err != nil {
			// Put back what was not written so the next flush tries again:
			// this batch's windows (unless a hit listed them again
			// meanwhile) and everything after it.
			s.mu.Lock()
			for _, sn := range snaps {
				rk := sn.rk
				if v, ok := rk.rs.windows[rk.key]; ok && !v.dirty() {
					rk.rs.windows[rk.key] = v | slotDirty
					s.dirty = append(s.dirty, rk)
				}
			}
			s.dirty = append(s.dirty, dirty[i:]...)
			s.gone = append(s.gone, gone[j0:]...)
			s.pendingEvents = append(evs, s.pendingEvents...)
			s.mu.Unlock()
			return fmt.Errorf("flushing %d counts: %w", len(dirty)-written, err)
		}
		written += len(snaps)
		evs = nil
	}
	return nil
}

// windowSnap is a window copied for the flush: its slot, its rule's span,
// where its older hits are in the batch's buffer, and its block if any.
type windowSnap struct {
	rk    ruleKey
	v     slot
	span  int64
	older [2]int
	block *Block
}

// goneKey is a key whose window or block is to be deleted from the file.
type goneKey struct {
	rk            ruleKey
	window, block bool
}

func (s *Store) flushLogged() {
	err := s.Flush()
	s.noteWrite(err) // health.go
	if err != nil {
		s.log.Error("state flush failed; counts stay in memory", "err", err)
	}
}

// Sweep drops windows with no hit inside their window and expired blocks,
// from memory and (at the next flush) from the file. It looks at sweepSlice
// keys per hold of the store's lock, so a sweep of a million keys does not
// stop the messages for its whole length.
func (s *Store) Sweep() {
	now := s.now()
	nowMs := now.UnixMilli()
	s.mu.Lock()
	defer s.mu.Unlock()
	rules := make([]*ruleState, 0, len(s.rules))
	for _, rs := range s.rules {
		rules = append(rules, rs)
	}
	seen := 0
	for _, rs := range rules {
		for key, v := range rs.windows {
			if seen++; seen%sweepSlice == 0 {
				// Let the messages waiting for the lock in. The map may
				// change meanwhile; Go's map iteration allows that (a key
				// deleted meanwhile is not visited, one added may be).
				s.mu.Unlock()
				runtime.Gosched()
				s.mu.Lock()
				var ok bool
				if v, ok = rs.windows[key]; !ok {
					continue
				}
			}
			if !rs.prune(key, v, nowMs) {
				delete(rs.windows, key)
				s.gone = append(s.gone, ruleKey{rs, key})
			}
		}
		for key, b := range rs.blocks {
			if !b.activeAt(now) {
				delete(rs.blocks, key)
				s.gone = append(s.gone, ruleKey{rs, key})
			}
		}
	}
}

func (s *Store) sweepLogged() { s.Sweep() }

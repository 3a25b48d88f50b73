// Package state keeps the sliding-window counts and the blocks of loopbreaker
// in an embedded bbolt file.
//
// The counts live in memory and are the authority while the daemon runs; they
// are written to the file in one transaction every flush interval (one fsync
// a second, not one per message), so a crash loses at most about the last
// interval of counts. A block is different: it is committed to the file
// before the caller acts on it, so a block that was acted on survives kill -9.
package state

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Defaults for Options.
const (
	DefaultFlushInterval = time.Second
	DefaultOpenTimeout   = 3 * time.Second
	DefaultSweepInterval = time.Minute
	// maxSamples is how many subjects a block keeps for the admin.
	maxSamples = 5
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

	// wmu orders the writers of the file (Flush, Release, a new block) so
	// that a flush snapshot taken before a release cannot put back on disk
	// what the release deleted. Take wmu before mu, never the other way.
	wmu     sync.Mutex
	mu      sync.Mutex
	windows map[string]*window // by id(rule, key)
	blocks  map[string]*Block  // by id(rule, key)
	dirty   map[string]struct{}
	gone    map[string]struct{} // windows to delete from the file

	events        []Event // the audit trail, newest last
	pendingEvents []Event // not yet in the file
	eventSeq      uint64

	stop chan struct{}
	done sync.WaitGroup
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
	db, err := bolt.Open(path, 0o640, &bolt.Options{Timeout: opts.OpenTimeout})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("opening state file %s: %w (waited %s)", path, ErrLocked, opts.OpenTimeout)
		}
		return nil, fmt.Errorf("opening state file %s: %w", path, err)
	}
	s := &Store{
		db:      db,
		now:     opts.Now,
		log:     opts.Logger,
		path:    path,
		windows: make(map[string]*window),
		blocks:  make(map[string]*Block),
		dirty:   make(map[string]struct{}),
		gone:    make(map[string]struct{}),
		stop:    make(chan struct{}),
	}
	if err := s.load(); err != nil {
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
	cerr := s.db.Close()
	return errors.Join(ferr, cerr)
}

func (s *Store) load() error {
	now := s.now()
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketCounts, bucketBlocks, bucketEvents} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("creating bucket %s: %w", name, err)
			}
		}
		var stale [][]byte
		err := tx.Bucket(bucketCounts).ForEach(func(k, v []byte) error {
			w, err := decodeWindow(v)
			if err != nil {
				// A damaged record costs one key's count, not the daemon.
				s.log.Warn("dropping unreadable count record", "key", string(k), "err", err)
				stale = append(stale, append([]byte(nil), k...))
				return nil
			}
			w.prune(now)
			if w.empty() {
				stale = append(stale, append([]byte(nil), k...))
				return nil
			}
			s.windows[string(k)] = w
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range stale {
			if err := tx.Bucket(bucketCounts).Delete(k); err != nil {
				return err
			}
		}
		stale = stale[:0]
		err = tx.Bucket(bucketBlocks).ForEach(func(k, v []byte) error {
			b, err := decodeBlock(v)
			if err != nil || !b.activeAt(now) {
				stale = append(stale, append([]byte(nil), k...))
				return nil
			}
			s.blocks[string(k)] = b
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range stale {
			if err := tx.Bucket(bucketBlocks).Delete(k); err != nil {
				return err
			}
		}
		s.events, s.eventSeq = loadEvents(tx)
		return nil
	})
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
	id := ID(r.Rule, r.Key)
	now := s.now()

	s.mu.Lock()
	w := s.windows[id]
	if w == nil {
		w = &window{}
		s.windows[id] = w
	}
	w.add(now, r.Window, r.Limit)
	s.dirty[id] = struct{}{}
	count := w.count(now)

	if b := s.blocks[id]; b != nil && b.activeAt(now) {
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
		Key:    r.Key,
		Since:  now,
		Until:  now.Add(r.BlockFor),
		Count:  1,
		Limit:  r.Limit,
		Window: r.Window,
	}
	b.addSample(r.Subject)
	s.blocks[id] = b
	res := Result{Count: count, Blocked: true, NewBlock: true, Block: b.clone()}
	s.mu.Unlock()

	// Durable before anyone acts on it. Other messages already see the block
	// in memory, so exactness does not wait for the disk.
	if err := s.putBlock(ctx, id, b); err != nil {
		return res, fmt.Errorf("committing block %s: %w", id, err)
	}
	return res, nil
}

// Blocked reports the block in force for (rule, key) without counting.
func (s *Store) Blocked(rule, key string) (Block, bool) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.blocks[ID(rule, key)]
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
	if w := s.windows[ID(rule, key)]; w != nil {
		return w.count(now)
	}
	return 0
}

// Blocks lists the blocks in force, oldest first.
func (s *Store) Blocks() []Block {
	now := s.now()
	s.mu.Lock()
	out := make([]Block, 0, len(s.blocks))
	for _, b := range s.blocks {
		if b.activeAt(now) {
			out = append(out, b.clone())
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
	for id, b := range s.blocks {
		if (rule == "" || b.Rule == rule) && (key == "" || b.Key == key) {
			ids = append(ids, id)
			lifted = append(lifted, b.clone())
			delete(s.blocks, id)
			if _, ok := s.windows[id]; ok {
				delete(s.windows, id)
				delete(s.dirty, id)
				s.gone[id] = struct{}{}
			}
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
	Dirty   int
}

// Stats reports how many keys are tracked.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Windows: len(s.windows), Blocks: len(s.blocks), Dirty: len(s.dirty)}
}

// putBlock commits b unless it was released in the meantime.
func (s *Store) putBlock(ctx context.Context, id string, b *Block) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	current := s.blocks[id] == b
	v, err := encodeBlock(b)
	s.mu.Unlock()
	if err != nil || !current {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBlocks).Put([]byte(id), v)
	})
}

// update runs one write transaction unless ctx is already done.
func (s *Store) update(ctx context.Context, f func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(f)
}

// Flush writes the counts and block counters changed since the last flush in
// one transaction.
func (s *Store) Flush() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	if len(s.dirty) == 0 && len(s.gone) == 0 && len(s.pendingEvents) == 0 {
		s.mu.Unlock()
		return nil
	}
	evs, lastSeq := s.pendingEvents, s.eventSeq
	s.pendingEvents = nil
	type rec struct {
		id    string
		win   []byte
		block []byte
	}
	recs := make([]rec, 0, len(s.dirty))
	for id := range s.dirty {
		r := rec{id: id}
		if w := s.windows[id]; w != nil {
			r.win = w.encode()
		}
		if b := s.blocks[id]; b != nil {
			if v, err := encodeBlock(b); err == nil {
				r.block = v
			}
		}
		recs = append(recs, r)
	}
	// A gone id may have come back since it was marked; delete from the
	// file only what memory no longer holds.
	type del struct {
		id            string
		window, block bool
	}
	gone := make([]del, 0, len(s.gone))
	for id := range s.gone {
		_, w := s.windows[id]
		_, b := s.blocks[id]
		if !w || !b {
			gone = append(gone, del{id: id, window: !w, block: !b})
		}
	}
	clear(s.dirty)
	clear(s.gone)
	s.mu.Unlock()

	// Sorted keys make bbolt's page writes sequential.
	sort.Slice(recs, func(i, j int) bool { return recs[i].id < recs[j].id })
	err := s.db.Update(func(tx *bolt.Tx) error {
		counts, blocks := tx.Bucket(bucketCounts), tx.Bucket(bucketBlocks)
		for _, r := range recs {
			if r.win != nil {
				if err := counts.Put([]byte(r.id), r.win); err != nil {
					return err
				}
			}
			if r.block != nil {
				if err := blocks.Put([]byte(r.id), r.block); err != nil {
					return err
				}
			}
		}
		for _, d := range gone {
			if d.window {
				if err := counts.Delete([]byte(d.id)); err != nil {
					return err
				}
			}
			if d.block {
				if err := blocks.Delete([]byte(d.id)); err != nil {
					return err
				}
			}
		}
		return writeEvents(tx, evs, lastSeq)
	})
	if err != nil {
		// Put them back so the next flush tries again.
		s.mu.Lock()
		for _, r := range recs {
			s.dirty[r.id] = struct{}{}
		}
		for _, d := range gone {
			s.gone[d.id] = struct{}{}
		}
		s.pendingEvents = append(evs, s.pendingEvents...)
		s.mu.Unlock()
		return fmt.Errorf("flushing %d counts: %w", len(recs), err)
	}
	return nil
}

func (s *Store) flushLogged() {
	if err := s.Flush(); err != nil {
		s.log.Error("state flush failed; counts stay in memory", "err", err)
	}
}

// Sweep drops windows with no hit inside their window and expired blocks,
// from memory and (at the next flush) from the file.
func (s *Store) Sweep() {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, w := range s.windows {
		w.prune(now)
		if w.empty() {
			delete(s.windows, id)
			delete(s.dirty, id)
			s.gone[id] = struct{}{}
		}
	}
	for id, b := range s.blocks {
		if !b.activeAt(now) {
			delete(s.blocks, id)
			s.gone[id] = struct{}{}
		}
	}
}

func (s *Store) sweepLogged() { s.Sweep() }

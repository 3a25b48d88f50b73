package state

import (
	"context"
	"errors"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// gateBackend is a Store whose Hit, while gate is set, says it entered and
// waits for the gate to open: a hit in progress the test controls.
type gateBackend struct {
	*Store
	entered chan struct{}
	gate    chan struct{}
	inHit   atomic.Int32
}

func (g *gateBackend) Hit(ctx context.Context, r Request) (Result, error) {
	g.inHit.Add(1)
	defer g.inHit.Add(-1)
	if g.gate != nil {
		g.entered <- struct{}{}
		<-g.gate
	}
	return g.Store.Hit(ctx, r)
}

func openSwitchTest(t *testing.T, name string) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), name), Options{FlushInterval: -1, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func switchReq(key string) Request {
	return Request{Rule: "fwd", Key: key, Window: 15 * time.Minute, Limit: 3, BlockFor: time.Hour, Subject: "FW: x"}
}

// TestSwitchWaitsForHitsInProgress: Move runs only once the hit in
// progress has finished (in the old backend), and a hit that arrives while
// Move waits is counted in the new backend.
func TestSwitchWaitsForHitsInProgress(t *testing.T) {
	old := &gateBackend{Store: openSwitchTest(t, "old.db"), entered: make(chan struct{}), gate: make(chan struct{})}
	next := &gateBackend{Store: openSwitchTest(t, "next.db")}
	sw := NewSwitch(old)
	ctx := context.Background()

	first := make(chan error, 1)
	go func() { _, err := sw.Hit(ctx, switchReq("alice")); first <- err }()
	<-old.entered // alice's hit is in progress in the old backend

	var movedWhileHit atomic.Bool
	moved := make(chan error, 1)
	go func() {
		_, err := sw.Move(ctx, func(_ context.Context, cur Backend) (Backend, error) {
			if cur != old {
				return nil, errors.New("move got another backend than the one in force")
			}
			movedWhileHit.Store(old.inHit.Load() > 0)
			return next, nil
		})
		moved <- err
	}()
	// Move is waiting once a reader can no longer get in.
	for sw.mu.TryRLock() {
		sw.mu.RUnlock()
		runtime.Gosched()
		select {
		case err := <-moved:
			t.Fatalf("Move returned while a hit was in progress: %v", err)
		default:
		}
	}
	second := make(chan error, 1)
	go func() { _, err := sw.Hit(ctx, switchReq("bob")); second <- err }()

	close(old.gate) // alice's hit finishes
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-moved; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	if movedWhileHit.Load() {
		t.Fatal("move ran while a hit was in progress")
	}
	if old.Count("fwd", "alice") != 1 || next.Count("fwd", "alice") != 0 {
		t.Errorf("alice counted %d in the old backend, %d in the new; want 1 and 0", old.Count("fwd", "alice"), next.Count("fwd", "alice"))
	}
	if old.Count("fwd", "bob") != 0 || next.Count("fwd", "bob") != 1 {
		t.Errorf("bob, who arrived during the move, counted %d in the old backend, %d in the new; want 0 and 1", old.Count("fwd", "bob"), next.Count("fwd", "bob"))
	}
	if sw.Current() != next {
		t.Error("the new backend is not in force")
	}
}

// TestSwitchMoveFailureKeepsTheBackend: a move that fails leaves the
// backend in force, and the calls go on with it.
func TestSwitchMoveFailureKeepsTheBackend(t *testing.T) {
	old := openSwitchTest(t, "old.db")
	sw := NewSwitch(old)
	_, err := sw.Move(context.Background(), func(context.Context, Backend) (Backend, error) {
		return nil, errors.New("new Redis unreachable")
	})
	if err == nil || err.Error() != "new Redis unreachable" {
		t.Fatalf("Move: %v", err)
	}
	if sw.Current() != Backend(old) {
		t.Fatal("a failed move changed the backend")
	}
	if _, err := sw.Hit(context.Background(), switchReq("alice")); err != nil || old.Count("fwd", "alice") != 1 {
		t.Fatalf("hit after the failed move: %v, count %d", err, old.Count("fwd", "alice"))
	}
}

// TestAdopt: an adopted block is in force and in the file at once (it
// survives a reopen without a flush); adopting a copy of a block the store
// has merges them without adding their counts; an ended block is ignored.
func TestAdopt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, Options{FlushInterval: -1, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now()
	b := Block{Rule: "fwd", Key: "alice@corp.example", Since: now.Add(-time.Minute), Until: now.Add(time.Hour),
		Count: 7, Limit: 3, Window: 15 * time.Minute, Samples: []string{"FW: one"}}
	if took, err := s.Adopt(ctx, b); err != nil || took != 1 {
		t.Fatalf("Adopt: %v %v", took, err)
	}
	if got, ok := s.Blocked("fwd", "alice@corp.example"); !ok || got.Count != 7 || !got.Until.Equal(b.Until) {
		t.Fatalf("adopted block: %+v %v", got, ok)
	}
	// A copy of the same block, started earlier, ending later, counted less.
	c := b
	c.Since, c.Until, c.Count, c.Samples = b.Since.Add(-time.Minute), b.Until.Add(time.Minute), 2, []string{"FW: one", "FW: two"}
	if _, err := s.Adopt(ctx, c); err != nil {
		t.Fatal(err)
	}
	ended := Block{Rule: "fwd", Key: "bob@corp.example", Since: now.Add(-2 * time.Hour), Until: now.Add(-time.Hour), Count: 4}
	if took, err := s.Adopt(ctx, ended); err != nil || took != 0 {
		t.Fatalf("Adopt of an ended block: %v %v", took, err)
	}
	// No flush: the file has the merged block already.
	var inFile *Block
	if err := s.db.View(func(tx *boltTx) error {
		v := tx.Bucket(bucketBlocks).Get([]byte(ID("fwd", "alice@corp.example")))
		if v == nil {
			return errors.New("no block in the file")
		}
		inFile, err = decodeBlock(v)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if inFile.Count != 7 || !inFile.Until.Equal(c.Until) {
		t.Fatalf("block in the file before any flush: %+v", inFile)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{FlushInterval: -1, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, ok := s.Blocked("fwd", "alice@corp.example")
	if !ok || got.Count != 7 || !got.Since.Equal(c.Since) || !got.Until.Equal(c.Until) || len(got.Samples) != 2 {
		t.Fatalf("merged block after a reopen: %+v %v; want since %v, until %v, count 7 (the larger, not the sum), two samples", got, ok, c.Since, c.Until)
	}
	if _, ok := s.Blocked("fwd", "bob@corp.example"); ok {
		t.Fatal("an ended block was adopted")
	}
}

package state

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable clock for crossing window edges without sleeping.
type fakeClock struct{ ns atomic.Int64 }

func newClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func openTest(t *testing.T, path string, c *fakeClock) *Store {
	t.Helper()
	s, err := Open(path, Options{Now: c.Now, FlushInterval: -1, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func req(key string) Request {
	return Request{Rule: "fwd", Key: key, Window: 15 * time.Minute, Limit: 3, BlockFor: time.Hour, Subject: "FW: x"}
}

func TestLimitLetsNThroughThenBlocks(t *testing.T) {
	c := newClock()
	s := openTest(t, filepath.Join(t.TempDir(), "state.db"), c)
	defer s.Close()
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		r, err := s.Hit(ctx, req("alice"))
		if err != nil || r.Blocked || r.Count != i {
			t.Fatalf("hit %d: %+v %v", i, r, err)
		}
		c.Advance(time.Second)
	}
	r, _ := s.Hit(ctx, req("alice"))
	if !r.Blocked || !r.NewBlock || r.Count != 4 {
		t.Fatalf("4th hit: %+v", r)
	}
	r, _ = s.Hit(ctx, req("alice"))
	if !r.Blocked || r.NewBlock || r.Block.Count != 2 {
		t.Fatalf("5th hit: %+v", r)
	}
	// Another key is counted on its own.
	if r, _ := s.Hit(ctx, req("bob")); r.Blocked || r.Count != 1 {
		t.Fatalf("bob: %+v", r)
	}
}

func TestWindowEdges(t *testing.T) {
	tests := []struct {
		name    string
		gaps    []time.Duration // before each of 4 hits
		blocked bool
	}{
		{"all inside", []time.Duration{0, time.Minute, time.Minute, time.Minute}, true},
		// The window is (now-15m, now]: a hit exactly 15m old is out.
		{"first exactly on the edge", []time.Duration{0, 5 * time.Minute, 5 * time.Minute, 5 * time.Minute}, false},
		{"first 1ms inside", []time.Duration{0, 5 * time.Minute, 5 * time.Minute, 5*time.Minute - time.Millisecond}, true},
		{"spread out", []time.Duration{0, 10 * time.Minute, 10 * time.Minute, 10 * time.Minute}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			s := openTest(t, filepath.Join(t.TempDir(), "state.db"), c)
			defer s.Close()
			var r Result
			for _, g := range tt.gaps {
				c.Advance(g)
				var err error
				if r, err = s.Hit(context.Background(), req("k")); err != nil {
					t.Fatal(err)
				}
			}
			if r.Blocked != tt.blocked {
				t.Fatalf("blocked = %v, want %v (count %d)", r.Blocked, tt.blocked, r.Count)
			}
		})
	}
}

func TestBlockExpiresAndStormRestartsBlock(t *testing.T) {
	c := newClock()
	s := openTest(t, filepath.Join(t.TempDir(), "state.db"), c)
	defer s.Close()
	ctx := context.Background()
	for i := 0; i < 4; i++ {
		s.Hit(ctx, req("k"))
	}
	if _, ok := s.Blocked("fwd", "k"); !ok {
		t.Fatal("no block")
	}
	c.Advance(time.Hour)
	if _, ok := s.Blocked("fwd", "k"); ok {
		t.Fatal("block outlived its hour")
	}
	// Quiet for the whole block: the window is empty, 3 pass again.
	for i := 1; i <= 3; i++ {
		if r, _ := s.Hit(ctx, req("k")); r.Blocked {
			t.Fatalf("hit %d after expiry blocked", i)
		}
	}
	if r, _ := s.Hit(ctx, req("k")); !r.NewBlock {
		t.Fatalf("storm did not block again: %+v", r)
	}
}

func TestRestartKeepsCountsAndBlocks(t *testing.T) {
	c := newClock()
	path := filepath.Join(t.TempDir(), "state.db")
	s := openTest(t, path, c)
	ctx := context.Background()
	for i := 0; i < 4; i++ {
		s.Hit(ctx, req("blocked"))
	}
	s.Hit(ctx, req("counted"))
	s.Hit(ctx, req("counted"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Minute)
	s = openTest(t, path, c)
	defer s.Close()
	if b, ok := s.Blocked("fwd", "blocked"); !ok || b.Count != 1 || len(b.Samples) != 1 {
		t.Fatalf("block after restart: %+v %v", b, ok)
	}
	if n := s.Count("fwd", "counted"); n != 2 {
		t.Fatalf("count after restart = %d, want 2", n)
	}
	if r, _ := s.Hit(ctx, req("counted")); r.Count != 3 || r.Blocked {
		t.Fatalf("%+v", r)
	}
}

func TestNewBlockIsDurableWithoutFlush(t *testing.T) {
	c := newClock()
	path := filepath.Join(t.TempDir(), "state.db")
	s := openTest(t, path, c)
	for i := 0; i < 4; i++ {
		s.Hit(context.Background(), req("k"))
	}
	// Simulate a crash: close the file without the final flush.
	close(s.stop)
	if err := s.db.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, path, c)
	defer s.Close()
	if _, ok := s.Blocked("fwd", "k"); !ok {
		t.Fatal("block lost without a flush")
	}
}

func TestConcurrentHitsAreExact(t *testing.T) {
	c := newClock()
	s := openTest(t, filepath.Join(t.TempDir(), "state.db"), c)
	defer s.Close()
	const workers, each, limit = 16, 50, 25
	passed, newBlocks := storm(t, s, workers, each, Request{Rule: "r", Key: "k", Window: time.Hour, Limit: limit, BlockFor: time.Hour})()
	if passed != limit || newBlocks != 1 {
		t.Fatalf("passed %d new blocks %d, want %d and 1", passed, newBlocks, limit)
	}
}

// storm starts workers goroutines that each Hit r each times. The returned
// wait waits for them and says how many hits passed and how many started a
// block.
func storm(t *testing.T, s *Store, workers, each int, r Request) (wait func() (passed, newBlocks int64)) {
	t.Helper()
	var p, nb atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			for i := 0; i < each; i++ {
				res, err := s.Hit(context.Background(), r)
				if err != nil {
					t.Error(err)
					return
				}
				if !res.Blocked {
					p.Add(1)
				}
				if res.NewBlock {
					nb.Add(1)
				}
			}
		})
	}
	return func() (int64, int64) {
		wg.Wait()
		return p.Load(), nb.Load()
	}
}

func TestReleaseLiftsAndResetsAndStaysLifted(t *testing.T) {
	c := newClock()
	path := filepath.Join(t.TempDir(), "state.db")
	s := openTest(t, path, c)
	ctx := context.Background()
	for i := 0; i < 4; i++ {
		s.Hit(ctx, req("a"))
		s.Hit(ctx, req("b"))
	}
	lifted, err := s.Release(ctx, "", "a")
	if err != nil || len(lifted) != 1 || lifted[0].Key != "a" {
		t.Fatalf("release: %v %v", lifted, err)
	}
	if r, _ := s.Hit(ctx, req("a")); r.Blocked || r.Count != 1 {
		t.Fatalf("after release: %+v", r)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, path, c)
	defer s.Close()
	if _, ok := s.Blocked("fwd", "a"); ok {
		t.Fatal("released block came back after restart")
	}
	if _, ok := s.Blocked("fwd", "b"); !ok {
		t.Fatal("unreleased block lost")
	}
	if lifted, _ := s.Release(ctx, "fwd", ""); len(lifted) != 1 {
		t.Fatalf("release of rule lifted %d", len(lifted))
	}
	if len(s.Blocks()) != 0 {
		t.Fatal("blocks left")
	}
}

func TestSweepDropsExpired(t *testing.T) {
	c := newClock()
	path := filepath.Join(t.TempDir(), "state.db")
	s := openTest(t, path, c)
	ctx := context.Background()
	for i := 0; i < 1000; i++ {
		s.Hit(ctx, Request{Rule: "r", Key: string(rune('a'+i%26)) + time.Duration(i).String(), Window: time.Minute, Limit: 5, BlockFor: time.Minute})
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	c.Advance(2 * time.Minute)
	s.Sweep()
	if st := s.Stats(); st.Windows != 0 {
		t.Fatalf("windows left after sweep: %d", st.Windows)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, path, c)
	defer s.Close()
	var n int
	s.db.View(func(tx *boltTx) error { n = tx.Bucket(bucketCounts).Stats().KeyN; return nil })
	if n != 0 {
		t.Fatalf("file still holds %d counts", n)
	}
}

func TestLockedFileFailsFast(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := openTest(t, path, newClock())
	defer s.Close()
	_, err := Open(path, Options{OpenTimeout: 200 * time.Millisecond, FlushInterval: -1, SweepInterval: -1})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("err = %v, want ErrLocked", err)
	}
}

func TestEventsAreBoundedAndSurviveRestart(t *testing.T) {
	c := newClock()
	path := filepath.Join(t.TempDir(), "state.db")
	s := openTest(t, path, c)
	for i := 0; i < MaxEvents+50; i++ {
		s.Record(Event{Rule: "r", Key: "k", Action: "redirect", Count: i})
		if i%300 == 0 {
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if evs := s.Events(0); len(evs) != MaxEvents || evs[len(evs)-1].Count != MaxEvents+49 {
		t.Fatalf("%d events in memory, last %+v", len(evs), evs[len(evs)-1])
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, path, c)
	defer s.Close()
	evs := s.Events(3)
	if len(evs) != 3 || evs[2].Count != MaxEvents+49 || evs[2].Seq != MaxEvents+50 {
		t.Fatalf("after restart: %+v", evs)
	}
	if all := s.Events(0); len(all) != MaxEvents {
		t.Fatalf("%d events after restart", len(all))
	}
	var n int
	s.db.View(func(tx *boltTx) error { n = tx.Bucket(bucketEvents).Stats().KeyN; return nil })
	if n != MaxEvents {
		t.Fatalf("file holds %d events, want %d", n, MaxEvents)
	}
	s.Record(Event{Action: "release"})
	if evs := s.Events(1); evs[0].Seq != MaxEvents+51 {
		t.Fatalf("sequence did not continue: %+v", evs)
	}
}

func TestTopKeys(t *testing.T) {
	c := newClock()
	s := openTest(t, filepath.Join(t.TempDir(), "state.db"), c)
	defer s.Close()
	for i, k := range []string{"a", "b", "c", "d"} {
		for j := 0; j <= i; j++ {
			s.Hit(context.Background(), Request{Rule: "r", Key: k, Window: time.Hour, Limit: 100, BlockFor: time.Hour})
		}
	}
	top := s.Top(2)
	if len(top) != 2 || top[0] != (KeyCount{"r", "d", 4}) || top[1] != (KeyCount{"r", "c", 3}) {
		t.Fatalf("top = %+v", top)
	}
	if all := s.Top(10); len(all) != 4 {
		t.Fatalf("top 10 = %+v", all)
	}
}

package state

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestFlushInBatchesWritesEverything flushes more keys than one flush
// transaction takes, with hits and a release in between, and checks what a
// restart finds.
func TestFlushInBatchesWritesEverything(t *testing.T) {
	c := newClock()
	path := filepath.Join(t.TempDir(), "state.db")
	s := openTest(t, path, c)
	ctx := context.Background()
	n := 2*flushBatch + 123
	for i := 0; i < n; i++ {
		if _, err := s.Hit(ctx, Request{Rule: "r", Key: "k" + strconv.Itoa(i), Window: time.Hour, Limit: 5, BlockFor: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 3; i++ { // a key with older hits, then blocked
		s.Hit(ctx, Request{Rule: "r", Key: "k7", Window: time.Hour, Limit: 2, BlockFor: time.Hour})
	}
	if st := s.Stats(); st.Dirty != n || st.Windows != n || st.Blocks != 1 {
		t.Fatalf("stats %+v", st)
	}
	if _, err := s.Release(ctx, "r", "k7"); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Dirty != 0 {
		t.Fatalf("after flush: %+v", st)
	}
	s.Hit(ctx, Request{Rule: "r", Key: "k8", Window: time.Hour, Limit: 5, BlockFor: time.Hour})
	// Simulate a crash: no final flush. k8's second hit is lost, the rest is
	// on disk; k7 stays released.
	close(s.stop)
	if err := s.db.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, path, c)
	defer s.Close()
	if st := s.Stats(); st.Windows != n-1 || st.Blocks != 0 {
		t.Fatalf("after restart: %+v, want %d windows", st, n-1)
	}
	if got := s.Count("r", "k8"); got != 1 {
		t.Fatalf("k8 count %d", got)
	}
	if got := s.Count("r", "k"+strconv.Itoa(n-1)); got != 1 {
		t.Fatalf("last key count %d", got)
	}
}

// TestSweepInSlicesUnderConcurrentHits sweeps more keys than one lock hold
// covers while other goroutines count storms: the storms stay exact and
// the sweep drops exactly the expired keys.
func TestSweepInSlicesUnderConcurrentHits(t *testing.T) {
	c := newClock()
	path := filepath.Join(t.TempDir(), "state.db")
	s := openTest(t, path, c)
	defer s.Close()
	ctx := context.Background()
	old := 3 * sweepSlice
	for i := 0; i < old; i++ {
		s.Hit(ctx, Request{Rule: "r", Key: "old" + strconv.Itoa(i), Window: time.Minute, Limit: 5, BlockFor: time.Minute})
	}
	for i := 0; i < old; i++ { // a second rule with a longer window: kept
		s.Hit(ctx, Request{Rule: "long", Key: "old" + strconv.Itoa(i), Window: time.Hour, Limit: 5, BlockFor: time.Minute})
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	c.Advance(2 * time.Minute)

	const workers, each, limit = 16, 10, 25
	wait := storm(t, s, workers, each, Request{Rule: "r", Key: "storm", Window: time.Minute, Limit: limit, BlockFor: time.Hour})
	s.Sweep()
	passed, _ := wait()
	if passed != limit {
		t.Fatalf("%d passed, want %d", passed, limit)
	}
	if st := s.Stats(); st.Windows != old+1 || st.Blocks != 1 {
		t.Fatalf("after sweep: %+v, want %d windows", st, old+1)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	var n int
	s.db.View(func(tx *boltTx) error { n = tx.Bucket(bucketCounts).Stats().KeyN; return nil })
	if n != old+1 {
		t.Fatalf("file holds %d counts, want %d", n, old+1)
	}
}

// TestEventsTrimmedInSteps records past twice MaxEvents: the trail never
// shows more than MaxEvents, and the newest are kept.
func TestEventsTrimmedInSteps(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "state.db"), newClock())
	defer s.Close()
	for i := 0; i < 5*MaxEvents+7; i++ {
		s.Record(Event{Action: "redirect", Count: i})
		if evs := s.Events(1); len(evs) != 1 || evs[0].Count != i {
			t.Fatalf("after %d: last %+v", i+1, evs)
		}
		if i%97 == 0 || i%MaxEvents > MaxEvents-3 {
			if evs := s.Events(0); len(evs) != min(i+1, MaxEvents) || evs[0].Count != max(0, i+1-MaxEvents) {
				t.Fatalf("after %d: %d events, first %+v", i+1, len(evs), evs[0])
			}
		}
	}
	if evs := s.Events(2 * MaxEvents); len(evs) != MaxEvents || evs[0].Count != 4*MaxEvents+7 {
		t.Fatalf("Events(2*MaxEvents): %d, first %+v", len(evs), evs[0])
	}
}

// TestWindowsMatchAReferenceModel drives a few keys with random gaps,
// limits that change nothing but the kept hits, sweeps, flushes and
// restarts, and checks every count against a plain list of hit times.
func TestWindowsMatchAReferenceModel(t *testing.T) {
	c := newClock()
	path := filepath.Join(t.TempDir(), "state.db")
	s := openTest(t, path, c)
	defer func() { s.Close() }()
	ctx := context.Background()
	const window, limit = 10 * time.Second, 4
	ref := map[string][]time.Time{}
	count := func(k string) int {
		n := 0
		for _, h := range ref[k] {
			if h.After(c.Now().Add(-window)) {
				n++
			}
		}
		return min(n, limit+1)
	}
	rng := uint64(42)
	next := func(n int) int { rng = rng*6364136223846793005 + 1442695040888963407; return int(rng>>33) % n }
	keys := []string{"a", "b", "c"}
	for step := 0; step < 3000; step++ {
		k := keys[next(len(keys))]
		switch op := next(20); {
		case op < 14:
			c.Advance(time.Duration(next(4000)) * time.Millisecond)
			ref[k] = append(ref[k], c.Now())
			// The (limit+1)th starts a block, which lasts a millisecond:
			// the count is what is compared.
			r, err := s.Hit(ctx, Request{Rule: "r", Key: k, Window: window, Limit: limit, BlockFor: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if want := count(k); r.Count != want {
				t.Fatalf("step %d: hit %s: count %d, want %d", step, k, r.Count, want)
			}
		case op < 16:
			s.Sweep()
		case op < 18:
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
		default:
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openTest(t, path, c)
		}
		for _, k := range keys {
			if got, want := s.Count("r", k), count(k); got != want {
				t.Fatalf("step %d: count %s = %d, want %d", step, k, got, want)
			}
		}
	}
}

package state

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// TestSweepShrinksMaps: a sweep that leaves a rule's map less than half
// full remakes it, and the windows left (with their second hits) are the
// same after.
func TestSweepShrinksMaps(t *testing.T) {
	c := newClock()
	s := openTest(t, t.TempDir()+"/state.db", c)
	defer s.Close()
	ctx := context.Background()
	const n = 3 * shrinkMin
	for i := 0; i < n; i++ {
		if _, err := s.Hit(ctx, req("old"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Hit(ctx, req("old"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	c.Advance(10 * time.Minute)
	for i := 0; i < n/4; i++ {
		for j := 0; j < 2; j++ {
			if _, err := s.Hit(ctx, req("new"+strconv.Itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	c.Advance(6 * time.Minute) // the old keys are out of their 15-minute window
	s.Sweep()
	rs := s.rules["fwd"]
	if len(rs.windows) != n/4 || rs.high != n/4 || len(rs.one) != n/4 || rs.highOne != n/4 {
		t.Fatalf("after the sweep: %d windows (high %d), %d second hits (high %d); want %d, remade", len(rs.windows), rs.high, len(rs.one), rs.highOne, n/4)
	}
	for i := 0; i < n/4; i++ {
		if got := s.Count("fwd", "new"+strconv.Itoa(i)); got != 2 {
			t.Fatalf("new%d counts %d after the shrink, want 2", i, got)
		}
	}
	if got := s.Count("fwd", "old1"); got != 0 {
		t.Fatalf("old1 counts %d, want 0", got)
	}
	if r, err := s.Hit(ctx, req("new1")); err != nil || r.Count != 3 {
		t.Fatalf("a hit after the shrink: %+v %v, want count 3", r, err)
	}
	// A sweep that drops little keeps the map.
	s.Sweep()
	if rs2 := s.rules["fwd"]; rs2.high != n/4 {
		t.Fatalf("high %d after a sweep that dropped nothing, want %d", rs2.high, n/4)
	}
}

// BenchmarkShrink is the cost of remaking a map of 500,000 windows (in
// slices of sweepSlice keys per lock hold), and the longest a concurrent
// lookup waited for the lock meanwhile (max-wait-ms; measured 2.9-4.0 ms,
// 64-91 ms when the new map was made with the lock held).
func BenchmarkShrink(b *testing.B) {
	s := &Store{rules: map[string]*ruleState{}}
	rs := s.rule("fwd")
	for i := 0; i < 500_000; i++ {
		rs.windows["s"+strconv.Itoa(i)+"@corp.example"] = mkslot(int64(i), 0)
	}
	worst := testproc.LongestStall(func() {
		s.mu.Lock()
		_ = rs.windows["s1@corp.example"]
		s.mu.Unlock()
	}, func() {
		b.ResetTimer()
		for b.Loop() {
			s.mu.Lock()
			rs.high = 2*len(rs.windows) + 1
			s.shrink(rs)
			s.mu.Unlock()
		}
		b.StopTimer()
	})
	b.ReportMetric(float64(worst)/float64(time.Millisecond), "max-wait-ms")
}

// TestShrinkWithConcurrentHits: hits that come while a shrink copies (the
// lock let go every sweepSlice keys) are all in the new map.
func TestShrinkWithConcurrentHits(t *testing.T) {
	c := newClock()
	s := openTest(t, t.TempDir()+"/state.db", c)
	defer s.Close()
	ctx := context.Background()
	const live = 3 * sweepSlice
	for i := 0; i < 3*live; i++ { // two thirds of them expire
		if i == 2*live {
			c.Advance(10 * time.Minute)
		}
		if _, err := s.Hit(ctx, req("k"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	c.Advance(6 * time.Minute)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for j := 0; j < 20_000; j++ {
			// a second hit on the keys left, and new keys
			if _, err := s.Hit(ctx, req("k"+strconv.Itoa(2*live+j%live))); err != nil {
				t.Error(err)
				return
			}
			if _, err := s.Hit(ctx, req("n"+strconv.Itoa(j))); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	s.Sweep()
	<-done
	for j := 0; j < 20_000; j++ {
		if got := s.Count("fwd", "k"+strconv.Itoa(2*live+j%live)); got != 2 {
			t.Fatalf("k%d counts %d, want 2", 2*live+j%live, got)
		}
		if got := s.Count("fwd", "n"+strconv.Itoa(j)); got != 1 {
			t.Fatalf("n%d counts %d, want 1", j, got)
		}
	}
	if got := s.Stats().Windows; got != live+20_000 {
		t.Fatalf("%d windows, want %d", got, live+20_000)
	}
	rs := s.rules["fwd"]
	if rs.nextWindows != nil || rs.nextOne != nil {
		t.Fatal("a shrink is still under way")
	}
	if rs.high >= 3*live {
		t.Fatalf("high %d: the sweep did not remake the map", rs.high)
	}
}

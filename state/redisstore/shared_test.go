package redisstore

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/state"
	"github.com/loopbreaker/loopbreaker/testenv/redisserver"
	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// daemon is one daemon's Shared store, as serve builds it, with opts
// (FailMode, Name) and short backoffs; its log is in the buffer, and in
// the test's output when the test fails.
func daemon(t *testing.T, url string, c *clock, opts SharedOptions) (*Shared, *testproc.Buffer) {
	t.Helper()
	local, err := state.Open(filepath.Join(t.TempDir(), "state.db"), state.Options{Now: c.Now, FlushInterval: -1, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(url, Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	lb := &testproc.Buffer{}
	opts.MinBackoff, opts.MaxBackoff, opts.SweepInterval = 10*time.Millisecond, 100*time.Millisecond, -1
	opts.Logger = slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := NewShared(r, local, opts)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon %s log:\n%s", opts.Name, lb)
		}
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s, lb
}

// waitShared waits until s has reconnected to Redis.
func waitShared(t *testing.T, s *Shared) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := testproc.Poll(ctx, "the reconnection to Redis", func(context.Context) error {
		if s.Degraded() {
			return fmt.Errorf("still degraded: %+v", s.BackendStatus())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func hits(t *testing.T, s *Shared, key string, n int) (passed, blocked int) {
	t.Helper()
	for i := 0; i < n; i++ {
		res, err := s.Hit(context.Background(), req(key))
		if err != nil {
			t.Fatal(err)
		}
		if res.Blocked {
			blocked++
		} else {
			passed++
		}
	}
	return passed, blocked
}

// TestSharedOutage: two daemons share one Redis; a storm split over both
// stops at the limit; a block made by A is seen and released by B. Redis
// is killed: both keep counting locally (the local limit applies, nothing
// fails), and show degraded. Redis comes back empty: the blocks made
// locally meanwhile are pushed, and B sees A's.
func TestSharedOutage(t *testing.T) {
	rs := redisserver.MustStart(t)
	c := newClock()
	a, alog := daemon(t, rs.URL(0), c, SharedOptions{FailMode: FailOpen})
	b, _ := daemon(t, rs.URL(0), c, SharedOptions{FailMode: FailOpen})
	if a.Degraded() || a.BackendStatus().Name != "redis" {
		t.Fatalf("status at start: %+v", a.BackendStatus())
	}
	// Limit 3 over both daemons: 2 pass at A, 1 at B, then all blocked.
	if p, bl := hits(t, a, "alice", 2); p != 2 || bl != 0 {
		t.Fatalf("A: %d passed, %d blocked", p, bl)
	}
	if p, bl := hits(t, b, "alice", 3); p != 1 || bl != 2 {
		t.Fatalf("B: %d passed, %d blocked; want 1 and 2", p, bl)
	}
	if blk, ok := a.Blocked("fwd", "alice"); !ok || blk.Count != 2 {
		t.Fatalf("A does not see B's block: %+v %v", blk, ok)
	}
	if bs := a.Blocks(); len(bs) != 1 || bs[0].Key != "alice" {
		t.Fatalf("A's Blocks: %+v", bs)
	}
	if n := a.Count("fwd", "alice"); n != 4 {
		t.Fatalf("A's Count: %d, want 4", n)
	}
	if lifted, err := a.Release(context.Background(), "fwd", "alice"); err != nil || len(lifted) != 1 {
		t.Fatalf("release from A: %+v %v", lifted, err)
	}
	if _, ok := b.Blocked("fwd", "alice"); ok {
		t.Fatal("B still sees the block A released")
	}

	rs.Kill()
	// Both go on counting, each on its own: 3 pass at each.
	for _, d := range []*Shared{a, b} {
		if p, bl := hits(t, d, "bob", 5); p != 3 || bl != 2 {
			t.Fatalf("during the outage: %d passed, %d blocked; want 3 and 2", p, bl)
		}
		st := d.BackendStatus()
		if !st.Degraded || st.Outages != 1 || st.Fallbacks != 5 || st.LastError == "" || st.DegradedSince.IsZero() {
			t.Fatalf("status during the outage: %+v", st)
		}
		if blk, ok := d.Blocked("fwd", "bob"); !ok || blk.Count != 2 {
			t.Fatalf("local block: %+v %v", blk, ok)
		}
	}
	if !strings.Contains(alog.String(), "Redis unreachable") {
		t.Fatalf("no log of the outage:\n%s", alog)
	}

	if err := rs.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitShared(t, a)
	waitShared(t, b)
	// Redis came back empty; the local blocks of both were pushed and merged.
	blk, ok := b.Redis().blockOrZero(t, "fwd", "bob")
	if !ok || blk.Count != 4 {
		t.Fatalf("bob's block in Redis after the outage: %+v %v; want both daemons' 2+2 messages", blk, ok)
	}
	if p, bl := hits(t, a, "bob", 1); p != 0 || bl != 1 {
		t.Fatal("bob not blocked through Redis after the outage")
	}
	// Shared again: a new storm split over both stops at 3.
	if p, _ := hits(t, a, "carol", 2); p != 2 {
		t.Fatal("carol at A")
	}
	if p, bl := hits(t, b, "carol", 2); p != 1 || bl != 1 {
		t.Fatalf("carol at B: %d passed, %d blocked; want 1 and 1", p, bl)
	}
	if !strings.Contains(alog.String(), "Redis is back") {
		t.Fatalf("no log of the reconnection:\n%s", alog)
	}
}

func (r *Redis) blockOrZero(t *testing.T, rule, key string) (state.Block, bool) {
	t.Helper()
	b, ok, err := r.Blocked(context.Background(), rule, key)
	if err != nil {
		t.Fatal(err)
	}
	return b, ok
}

// TestReleaseDuringOutage: a block released while Redis is unreachable is
// lifted in Redis once it is back (Redis kept its data: SAVE before the kill).
func TestReleaseDuringOutage(t *testing.T) {
	rs := redisserver.MustStart(t)
	c := newClock()
	a, _ := daemon(t, rs.URL(0), c, SharedOptions{FailMode: FailOpen})
	b, _ := daemon(t, rs.URL(0), c, SharedOptions{FailMode: FailOpen})
	if _, bl := hits(t, a, "dave", 4); bl != 1 {
		t.Fatal("dave not blocked")
	}
	if err := a.Redis().c.Save(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	rs.Kill()
	if _, err := b.Release(context.Background(), "", "dave"); err != nil {
		t.Fatal(err)
	}
	if !b.Degraded() {
		t.Fatal("B did not notice the outage")
	}
	if err := rs.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitShared(t, b)
	if blk, ok := b.Redis().blockOrZero(t, "fwd", "dave"); ok {
		t.Fatalf("the block released during the outage is back: %+v", blk)
	}
}

// TestFailPassAndRedisDownAtStart: a daemon whose Redis is down at start
// starts degraded; in pass mode it lets everything through uncounted.
func TestFailPassAndRedisDownAtStart(t *testing.T) {
	rs := redisserver.MustStart(t)
	rs.Kill()
	c := newClock()
	d, _ := daemon(t, rs.URL(0), c, SharedOptions{FailMode: FailPass})
	if !d.Degraded() {
		t.Fatal("not degraded with Redis down")
	}
	if p, bl := hits(t, d, "erin", 10); p != 10 || bl != 0 {
		t.Fatalf("pass mode: %d passed, %d blocked", p, bl)
	}
	if st := d.BackendStatus(); st.FailMode != "pass" || st.Fallbacks != 10 {
		t.Fatalf("status: %+v", st)
	}
	if err := rs.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitShared(t, d)
	if p, bl := hits(t, d, "erin", 4); p != 3 || bl != 1 {
		t.Fatalf("after the outage: %d passed, %d blocked", p, bl)
	}
}

func TestParseFailMode(t *testing.T) {
	for in, want := range map[string]FailMode{"": FailOpen, "open": FailOpen, "pass": FailPass} {
		if got, err := ParseFailMode(in); err != nil || got != want {
			t.Errorf("ParseFailMode(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseFailMode("closed"); err == nil {
		t.Error("ParseFailMode accepted closed")
	}
}

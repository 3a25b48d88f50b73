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

// storm hits key until it is blocked; it returns the block.
func storm(t *testing.T, b state.Backend, key string) state.Block {
	t.Helper()
	for range 10 {
		res, err := b.Hit(context.Background(), req(key))
		if err != nil {
			t.Fatal(err)
		}
		if res.Blocked {
			return res.Block
		}
	}
	t.Fatalf("no block for %s after 10 hits", key)
	return state.Block{}
}

// blockOf is b's block on key, failing the test when there is none.
func blockOf(t *testing.T, b state.Backend, key, where string) state.Block {
	t.Helper()
	blk, ok := b.Blocked("fwd", key)
	if !ok {
		t.Fatalf("%s: no block on %s; blocks %+v", where, key, b.Blocks())
	}
	return blk
}

// TestMoveCarriesBlocks: a block is carried over on each kind of move
// (file → Redis A → Redis B → file), with its end and its count of
// messages acted on (not doubled), and still acts on the next message; the
// file's own block too. Each Redis left has been let go.
func TestMoveCarriesBlocks(t *testing.T) {
	a, b := redisserver.MustStart(t), redisserver.MustStart(t)
	c := newClock()
	local, err := state.Open(filepath.Join(t.TempDir(), "state.db"), state.Options{Now: c.Now, FlushInterval: -1, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	lb := &testproc.Buffer{}
	sopts := SharedOptions{SweepInterval: -1, Name: "mta1", Logger: slog.New(slog.NewTextHandler(lb, nil))}
	ctx := context.Background()
	connect := func(url string) *Redis {
		r, err := New(url, Options{Now: c.Now})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	var cur state.Backend = local
	defer func() {
		if t.Failed() {
			t.Logf("log:\n%s", lb)
		}
		cur.Close()
	}()

	// The file alone: alice is blocked, one message acted on.
	alice := storm(t, cur, "alice@corp.example")

	// file → Redis A.
	if cur, err = Move(ctx, cur, connect(a.URL(0)), sopts); err != nil {
		t.Fatal(err)
	}
	if st := cur.BackendStatus(); st.Name != "redis" || st.Address != a.URL(0) || st.Degraded {
		t.Fatalf("after the move to A: %+v", st)
	}
	if got := blockOf(t, cur, "alice@corp.example", "Redis A"); !got.Until.Equal(alice.Until) || got.Count != 1 {
		t.Fatalf("alice's block in A: %+v, want until %v, 1 acted on", got, alice.Until)
	}
	// A acts on alice (2 acted on) and blocks bob.
	if res, err := cur.Hit(ctx, req("alice@corp.example")); err != nil || !res.Blocked || res.Block.Count != 2 {
		t.Fatalf("alice's next message in A: %+v %v", res, err)
	}
	bob := storm(t, cur, "bob@corp.example")

	// Redis A → Redis B.
	if cur, err = Move(ctx, cur, connect(b.URL(0)), sopts); err != nil {
		t.Fatal(err)
	}
	if st := cur.BackendStatus(); st.Address != b.URL(0) || st.Degraded {
		t.Fatalf("after the move to B: %+v", st)
	}
	if got := blockOf(t, cur, "alice@corp.example", "Redis B"); got.Count != 2 {
		t.Fatalf("alice's block in B: %+v, want 2 acted on (A's count, the file's copy not added)", got)
	}
	if got := blockOf(t, cur, "bob@corp.example", "Redis B"); !got.Until.Equal(bob.Until) || got.Count != 1 {
		t.Fatalf("bob's block in B: %+v, want until %v, 1 acted on", got, bob.Until)
	}
	if res, err := cur.Hit(ctx, req("bob@corp.example")); err != nil || !res.Blocked || res.Block.Count != 2 {
		t.Fatalf("bob's next message in B: %+v %v", res, err)
	}
	carol := storm(t, cur, "carol@corp.example")

	// Redis B → the file alone.
	if cur, err = Move(ctx, cur, nil, sopts); err != nil {
		t.Fatal(err)
	}
	if cur != state.Backend(local) {
		t.Fatalf("after the move to the file: %T", cur)
	}
	if got := blockOf(t, cur, "bob@corp.example", "the file"); got.Count != 2 {
		t.Fatalf("bob's block in the file: %+v, want 2 acted on", got)
	}
	if got := blockOf(t, cur, "carol@corp.example", "the file"); !got.Until.Equal(carol.Until) {
		t.Fatalf("carol's block in the file: %+v, want until %v", got, carol.Until)
	}
	blockOf(t, cur, "alice@corp.example", "the file")
	if res, err := cur.Hit(ctx, req("carol@corp.example")); err != nil || !res.Blocked {
		t.Fatalf("carol's next message in the file: %+v %v", res, err)
	}
	if !strings.Contains(lb.String(), "Redis let go") || !strings.Contains(lb.String(), "state in the state file alone") {
		t.Errorf("the moves are not logged:\n%s", lb)
	}
}

// TestMoveRefused: a Redis that does not answer refuses the move with
// the reason; the backend in force stays and works.
func TestMoveRefused(t *testing.T) {
	a := redisserver.MustStart(t)
	c := newClock()
	local, err := state.Open(filepath.Join(t.TempDir(), "state.db"), state.Options{Now: c.Now, FlushInterval: -1, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sopts := SharedOptions{SweepInterval: -1, Logger: slog.New(slog.DiscardHandler)}
	cur, err := Move(ctx, local, newRedis(t, a.URL(0), c), sopts)
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	storm(t, cur, "alice@corp.example")

	port, err := testproc.FreePort(ctx, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	down := fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	next, err := Move(tctx, cur, newRedis(t, down, c), sopts)
	cancel()
	if err == nil {
		next.Close()
		t.Fatalf("move to %s accepted", down)
	}
	if !strings.Contains(err.Error(), "does not answer") {
		t.Errorf("move to %s refused with %q, want it to say it does not answer", down, err)
	}
	if st := cur.BackendStatus(); st.Address != a.URL(0) || st.Degraded {
		t.Fatalf("after the refused move: %+v", st)
	}
	if res, err := cur.Hit(ctx, req("alice@corp.example")); err != nil || !res.Blocked {
		t.Fatalf("alice after the refused move: %+v %v", res, err)
	}
}

// BenchmarkMove measures how long a reload's move holds the messages
// back (state.Switch.Move: the drain and the move), with 1 and 100 blocks
// in force, for each kind of move. Report: held-ms/op.
func BenchmarkMove(b *testing.B) {
	if err := redisserver.Available(); err != nil {
		b.Skip(err)
	}
	for _, blocks := range []int{1, 100} {
		b.Run(fmt.Sprintf("blocks=%d", blocks), func(b *testing.B) {
			ra, rb := redisserver.MustStart(b), redisserver.MustStart(b)
			local, err := state.Open(filepath.Join(b.TempDir(), "state.db"), state.Options{FlushInterval: -1, SweepInterval: -1})
			if err != nil {
				b.Fatal(err)
			}
			sw := state.NewSwitch(local)
			defer sw.Close()
			ctx := context.Background()
			for i := range blocks {
				for range 4 {
					if _, err := sw.Hit(ctx, req(fmt.Sprintf("user%d@corp.example", i))); err != nil {
						b.Fatal(err)
					}
				}
			}
			sopts := SharedOptions{SweepInterval: -1, Logger: slog.New(slog.DiscardHandler)}
			held := map[string]time.Duration{}
			b.ResetTimer()
			for range b.N {
				for _, step := range []struct{ name, url string }{{"file-to-A", ra.URL(0)}, {"A-to-B", rb.URL(0)}, {"B-to-file", ""}} {
					var r *Redis
					if step.url != "" {
						// Connected and pinged before the move, as the daemon does.
						if r, err = New(step.url, Options{}); err != nil {
							b.Fatal(err)
						}
						if err := r.Ping(ctx); err != nil {
							b.Fatal(err)
						}
					}
					st, err := sw.Move(ctx, func(ctx context.Context, cur state.Backend) (state.Backend, error) {
						return Move(ctx, cur, r, sopts)
					})
					if err != nil {
						b.Fatal(err)
					}
					held[step.name] += st.Held
				}
			}
			b.StopTimer()
			if n := len(sw.Blocks()); n != blocks {
				b.Fatalf("%d blocks after the moves, want %d", n, blocks)
			}
			for name, d := range held {
				b.ReportMetric(float64(d.Microseconds())/1000/float64(b.N), name+"-held-ms/op")
			}
		})
	}
}

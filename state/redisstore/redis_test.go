package redisstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loopbreaker/loopbreaker/state"
	"github.com/loopbreaker/loopbreaker/testenv/redisserver"
)

// clock is a settable clock that starts at the real time (Redis expires
// keys by its own clock: PEXPIREAT in the past would delete at once).
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Now().Truncate(time.Millisecond).UnixNano())
	return c
}
func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// db hands each test its own database of the one server of the package's
// tests... or a server of its own when it kills it.
var (
	srvOnce sync.Once
	srv     *redisserver.Server
	srvErr  error
	srvDir  string
	nextDB  atomic.Int32
)

// TestMain stops the package's shared redis-server when the tests end:
// nothing else would, and it would outlive the test binary.
func TestMain(m *testing.M) {
	code := m.Run()
	if srv != nil {
		srv.Kill()
		os.RemoveAll(srvDir)
	}
	os.Exit(code)
}

// sharedServer is one redis-server for the tests that do not kill it; each
// test gets a database of its own (16 by default).
func sharedServer(t *testing.T) string {
	t.Helper()
	if err := redisserver.Available(); err != nil {
		t.Skipf("skipping: needs a real Redis: %v", err)
	}
	srvOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		dir, err := mkdirTemp()
		if err != nil {
			srvErr = err
			return
		}
		srvDir = dir
		srv, srvErr = redisserver.Start(ctx, dir)
	})
	if srvErr != nil {
		t.Fatal(srvErr)
	}
	db := int(nextDB.Add(1)) % 16
	url := srv.URL(db)
	o, _ := redis.ParseURL(url)
	c := redis.NewClient(o)
	defer c.Close()
	if err := c.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	return url
}

func newRedis(t *testing.T, url string, c *clock) *Redis {
	t.Helper()
	r, err := New(url, Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func req(key string) state.Request {
	return state.Request{Rule: "fwd", Key: key, Window: 15 * time.Minute, Limit: 3, BlockFor: time.Hour, Subject: "FW: x"}
}

func TestHitLetsNThroughThenBlocks(t *testing.T) {
	c := newClock()
	r := newRedis(t, sharedServer(t), c)
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		res, err := r.Hit(ctx, req("alice"))
		if err != nil || res.Blocked || res.Count != i {
			t.Fatalf("hit %d: %+v %v", i, res, err)
		}
		c.Advance(time.Second)
	}
	res, err := r.Hit(ctx, req("alice"))
	if err != nil || !res.Blocked || !res.NewBlock || res.Count != 4 || res.Block.Count != 1 || !res.Block.Until.Equal(c.Now().Add(time.Hour)) {
		t.Fatalf("4th hit: %+v %v", res, err)
	}
	res, _ = r.Hit(ctx, req("alice"))
	if !res.Blocked || res.NewBlock || res.Block.Count != 2 || len(res.Block.Samples) != 2 || res.Block.Limit != 3 || res.Block.Window != 15*time.Minute {
		t.Fatalf("5th hit: %+v", res)
	}
	if res, _ := r.Hit(ctx, req("bob")); res.Blocked || res.Count != 1 {
		t.Fatalf("bob: %+v", res)
	}
	b, ok, err := r.Blocked(ctx, "fwd", "alice")
	if err != nil || !ok || b.Count != 2 || b.Key != "alice" || b.Rule != "fwd" {
		t.Fatalf("Blocked: %+v %v %v", b, ok, err)
	}
	if n, err := r.Count(ctx, "fwd", "alice"); err != nil || n != 4 {
		t.Fatalf("Count: %d %v (want 4: limit+1 kept)", n, err)
	}
	// The block ends; the count has moved on too.
	c.Advance(time.Hour)
	if _, ok, _ := r.Blocked(ctx, "fwd", "alice"); ok {
		t.Fatal("block still in force after block_for")
	}
	if res, _ := r.Hit(ctx, req("alice")); res.Blocked || res.Count != 1 {
		t.Fatalf("after the block: %+v", res)
	}
}

// TestSameAsBBolt drives the Redis store and the bbolt store with the same
// random sequence of hits, keys, limits and clock steps: every result and
// every count must be the same (the Redis store has the bbolt store's
// sliding-window semantics, edges included).
func TestSameAsBBolt(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { sameAsBBolt(t, seed) })
	}
}

func sameAsBBolt(t *testing.T, seed uint64) {
	c := newClock()
	r := newRedis(t, sharedServer(t), c)
	local, err := state.Open(filepath.Join(t.TempDir(), "state.db"), state.Options{Now: c.Now, FlushInterval: -1, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 1))
	keys := []string{"a", "b", "c"}
	steps := []time.Duration{0, time.Millisecond, time.Second, time.Minute, 5 * time.Minute, 15 * time.Minute, 15*time.Minute - time.Millisecond}
	blocks, releases := 0, 0
	for i := 0; i < 1200; i++ {
		c.Advance(steps[rng.IntN(len(steps))] * time.Duration(rng.IntN(2)))
		q := state.Request{Rule: "r", Key: keys[rng.IntN(len(keys))], Window: 15 * time.Minute, Limit: rng.IntN(2) + 3,
			BlockFor: []time.Duration{0, 10 * time.Minute, time.Hour}[rng.IntN(3)], Subject: fmt.Sprint("s", i)}
		// The admin releases a block in force (the bbolt store also clears
		// the window of a block that ended but was not swept yet: a detail
		// of its sweep, not a semantics to copy).
		if _, blocked := local.Blocked(q.Rule, q.Key); blocked && rng.IntN(4) == 0 {
			got, err := r.Release(ctx, q.Rule, q.Key)
			if err != nil {
				t.Fatal(err)
			}
			want, err := local.Release(ctx, q.Rule, q.Key)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || len(want) != 1 || got[0].Count != want[0].Count || !got[0].Until.Equal(want[0].Until) {
				t.Fatalf("release %d: redis %+v, bbolt %+v", i, got, want)
			}
			releases++
			continue
		}
		got, err := r.Hit(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := local.Hit(ctx, q)
		if !sameResult(got, want) {
			t.Fatalf("hit %d %+v:\nredis %+v\nbbolt %+v", i, q, got, want)
		}
		if got.NewBlock {
			blocks++
		}
		for _, k := range keys {
			if g, _ := r.Count(ctx, "r", k); g != local.Count("r", k) {
				t.Fatalf("hit %d: count of %s: redis %d, bbolt %d", i, k, g, local.Count("r", k))
			}
		}
	}
	if blocks < 10 || releases < 10 {
		t.Fatalf("only %d blocks started and %d releases: the sequence does not exercise the limit", blocks, releases)
	}
}

// TestConcurrentHitsExact: four clients (four daemons) with 16 goroutines
// each hit one key 400 times at once: exactly the limit passes and exactly
// one hit starts the block.
func TestConcurrentHitsExact(t *testing.T) {
	c := newClock()
	url := sharedServer(t)
	var clients []*Redis
	for range 4 {
		clients = append(clients, newRedis(t, url, c))
	}
	exactStorm(t, clients, 16, 25, 150)
}

// TestExpiry: the window and the block carry TTLs, so Redis forgets them
// by itself.
func TestExpiry(t *testing.T) {
	c := newClock()
	url := sharedServer(t)
	r := newRedis(t, url, c)
	ctx := context.Background()
	q := state.Request{Rule: "fwd", Key: "k", Window: 2 * time.Minute, Limit: 0, BlockFor: 10 * time.Minute}
	if res, err := r.Hit(ctx, q); err != nil || !res.NewBlock {
		t.Fatalf("%+v %v", res, err)
	}
	id := state.ID("fwd", "k")
	for _, k := range []struct {
		key string
		max time.Duration
	}{{r.k("w", id), 2 * time.Minute}, {r.k("b", id), 10 * time.Minute}} {
		ttl, err := r.c.PTTL(ctx, k.key).Result()
		if err != nil || ttl <= 0 || ttl > k.max {
			t.Errorf("TTL of %q: %s %v; want in (0, %s]", k.key, ttl, err, k.max)
		}
	}
}

func TestBlocksReleaseTopPush(t *testing.T) {
	c := newClock()
	url := sharedServer(t)
	a, b := newRedis(t, url, c), newRedis(t, url, c)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		for _, k := range []string{"alice", "bob"} {
			if _, err := a.Hit(ctx, req(k)); err != nil {
				t.Fatal(err)
			}
		}
		c.Advance(time.Millisecond)
	}
	if _, err := a.Hit(ctx, state.Request{Rule: "other", Key: "alice", Window: time.Minute, Limit: 9, BlockFor: time.Hour}); err != nil {
		t.Fatal(err)
	}
	bs, err := b.Blocks(ctx)
	if err != nil || len(bs) != 2 || bs[0].Key != "alice" || bs[1].Key != "bob" || bs[0].Count != 2 {
		t.Fatalf("Blocks from the other client: %+v %v", bs, err)
	}
	top, err := b.Top(ctx, 2)
	if err != nil || len(top) != 2 || top[0].Count != 4 || top[1].Count != 4 {
		t.Fatalf("Top: %+v %v", top, err)
	}
	if n, err := b.Tracked(ctx); err != nil || n != 3 {
		t.Fatalf("Tracked: %d %v", n, err)
	}
	// Released from the other client: gone, and a fresh count.
	lifted, err := b.Release(ctx, "", "alice")
	if err != nil || len(lifted) != 1 || lifted[0].Key != "alice" || lifted[0].Count != 2 {
		t.Fatalf("Release: %+v %v", lifted, err)
	}
	if _, ok, _ := a.Blocked(ctx, "fwd", "alice"); ok {
		t.Fatal("alice still blocked after release")
	}
	if res, _ := a.Hit(ctx, req("alice")); res.Blocked || res.Count != 1 {
		t.Fatalf("after release: %+v", res)
	}
	if lifted, err := b.Release(ctx, "fwd", ""); err != nil || len(lifted) != 1 || lifted[0].Key != "bob" {
		t.Fatalf("Release of the rule: %+v %v", lifted, err)
	}
	// A block made elsewhere is pushed: created when absent, merged when present.
	local := state.Block{Rule: "fwd", Key: "carol", Since: c.Now(), Until: c.Now().Add(time.Hour), Count: 3, Limit: 3, Window: 15 * time.Minute, Samples: []string{"x"}}
	if err := b.Push(ctx, local); err != nil {
		t.Fatal(err)
	}
	local.Until = local.Until.Add(time.Hour)
	if err := b.Push(ctx, local); err != nil {
		t.Fatal(err)
	}
	got, ok, err := a.Blocked(ctx, "fwd", "carol")
	if err != nil || !ok || got.Count != 6 || !got.Until.Equal(local.Until) || len(got.Samples) != 2 {
		t.Fatalf("pushed block: %+v %v %v", got, ok, err)
	}
	if res, _ := a.Hit(ctx, req("carol")); !res.Blocked || res.Block.Count != 7 {
		t.Fatalf("hit under the pushed block: %+v", res)
	}
	c.Advance(3 * time.Hour)
	if err := a.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := a.c.ZCard(ctx, a.keysKey()).Result(); n != 0 {
		t.Fatalf("%d window index entries left after the sweep", n)
	}
	if n, _ := a.c.HLen(ctx, a.spansKey()).Result(); n != 0 {
		t.Fatalf("%d spans left after the sweep", n)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"redis://127.0.0.1:6379/0":          "redis://127.0.0.1:6379/0",
		"redis://:secret@10.0.0.1:6379/2":   "redis://***@10.0.0.1:6379/2",
		"rediss://u:secret@redis.corp:6380": "rediss://***@redis.corp:6380",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
	if _, err := New("http://x", Options{}); err == nil {
		t.Error("New accepted an http URL")
	}
}

func mkdirTemp() (string, error) { return os.MkdirTemp("", "lb-redis-test") }

// sameResult compares what the engine reads of a Result (not the samples).
func sameResult(a, b state.Result) bool {
	return a.Count == b.Count && a.Blocked == b.Blocked && a.NewBlock == b.NewBlock &&
		a.Block.Rule == b.Block.Rule && a.Block.Key == b.Block.Key && a.Block.Count == b.Block.Count &&
		a.Block.Limit == b.Block.Limit && a.Block.Window == b.Block.Window &&
		a.Block.Since.Equal(b.Block.Since) && a.Block.Until.Equal(b.Block.Until)
}

// TestDaemonsWithClocksApartShareOneWindow: without Options.Now each
// daemon reads Redis's clock (TIME) and corrects its own by the offset, so
// two daemons whose clocks are an hour early and an hour late still count
// one storm in one 15-minute window.
func TestDaemonsWithClocksApartShareOneWindow(t *testing.T) {
	url := sharedServer(t)
	ctx := context.Background()
	daemon := func(skew time.Duration) *Redis {
		r, err := New(url, Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		r.clock.local = func() time.Time { return time.Now().Add(skew) }
		if err := r.Ping(ctx); err != nil {
			t.Fatal(err)
		}
		if d := r.now().Sub(time.Now()); d > 2*time.Second || d < -2*time.Second {
			t.Fatalf("clock %v off is corrected to %v off Redis's", skew, d)
		}
		return r
	}
	early, late := daemon(-time.Hour), daemon(time.Hour)
	for i, r := range []*Redis{early, late, early} {
		res, err := r.Hit(ctx, req("alice"))
		if err != nil || res.Blocked || res.Count != i+1 {
			t.Fatalf("hit %d: %+v %v", i+1, res, err)
		}
	}
	res, err := late.Hit(ctx, req("alice"))
	if err != nil || !res.Blocked || !res.NewBlock {
		t.Fatalf("4th hit over both daemons: %+v %v, want a new block", res, err)
	}
}

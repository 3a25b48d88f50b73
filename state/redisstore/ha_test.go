package redisstore

// Tests against real Sentinel and Cluster deployments (testenv/redisserver
// starts them): the limit stays exact over several clients, listing works
// across a cluster's masters, and a master killed mid-storm neither
// returns an error that would refuse mail nor lets the storm run: the
// number of messages passed beyond the limit while the master is replaced
// is bounded, and the bound is asserted.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loopbreaker/loopbreaker/state"
	"github.com/loopbreaker/loopbreaker/testenv/redisserver"
	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// exactStorm hits one key from every client with goroutines goroutines,
// each times each: exactly limit pass and exactly one starts the block.
func exactStorm(t *testing.T, clients []*Redis, goroutines, each, limit int) {
	t.Helper()
	var passed, started, blocked atomic.Int64
	var wg sync.WaitGroup
	q := state.Request{Rule: "fwd", Key: "exact", Window: time.Hour, Limit: limit, BlockFor: time.Hour}
	for _, r := range clients {
		for range goroutines {
			wg.Go(func() {
				for range each {
					res, err := r.Hit(context.Background(), q)
					if err != nil {
						t.Error(err)
						return
					}
					switch {
					case res.NewBlock:
						started.Add(1)
					case res.Blocked:
						blocked.Add(1)
					default:
						passed.Add(1)
					}
				}
			})
		}
	}
	wg.Wait()
	total := int64(len(clients) * goroutines * each)
	if passed.Load() != int64(limit) || started.Load() != 1 || blocked.Load() != total-int64(limit)-1 {
		t.Fatalf("passed %d, started %d, blocked %d of %d; want %d, 1, %d", passed.Load(), started.Load(), blocked.Load(), total, limit, total-int64(limit)-1)
	}
	b, ok, err := clients[0].Blocked(context.Background(), q.Rule, q.Key)
	if err != nil || !ok || int64(b.Count) != total-int64(limit) {
		t.Fatalf("block: %+v %v %v; want %d messages acted on", b, ok, err, total-int64(limit))
	}
}

// failoverStorm is a storm over daemons (Shared stores) during which kill
// is called once half the limit has passed; kill returns once the
// deployment has replaced the master. The storm goes on until every daemon
// is back on Redis and then for 200 more hits. It returns how many
// messages passed in all; the caller asserts the bound.
func failoverStorm(t *testing.T, daemons []*Shared, goroutines, limit int, kill func()) (passed int64) {
	t.Helper()
	q := state.Request{Rule: "fwd", Key: "failover-storm", Window: time.Hour, Limit: limit, BlockFor: time.Hour}
	var pass, hit, errs atomic.Int64
	var after atomic.Int64 // hits after every daemon was back
	var back atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var lastPass atomic.Int64 // the hit number of the last message passed after the recovery
	for _, d := range daemons {
		for range goroutines {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					res, err := d.Hit(ctx, q)
					cancel()
					n := hit.Add(1)
					if err != nil {
						errs.Add(1)
						t.Errorf("hit %d: %v (an error refuses mail)", n, err)
						continue
					}
					if !res.Blocked {
						pass.Add(1)
						if back.Load() {
							lastPass.Store(n)
						}
					}
					if back.Load() {
						after.Add(1)
					}
					time.Sleep(time.Millisecond)
				}
			})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	wait := func(what string, cond func() bool) {
		if err := testproc.Poll(ctx, what, func(context.Context) error {
			if !cond() {
				return errors.New("not yet")
			}
			return nil
		}); err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("storm: %v (passed %d of %d hits)", err, pass.Load(), hit.Load())
		}
	}
	wait("half the limit to pass", func() bool { return pass.Load() >= int64(limit/2) })
	before := pass.Load()
	start := time.Now()
	kill()
	t.Logf("master replaced in %s; %d passed before the kill, %d by the end of the failover", time.Since(start).Round(time.Millisecond), before, pass.Load())
	wait("every daemon back on Redis", func() bool {
		for _, d := range daemons {
			if d.Degraded() {
				return false
			}
		}
		return true
	})
	back.Store(true)
	wait("200 hits after the recovery", func() bool { return after.Load() >= 200 })
	close(stop)
	wg.Wait()
	outages := 0
	for _, d := range daemons {
		outages += int(d.BackendStatus().Outages)
	}
	t.Logf("%d hits, %d passed (limit %d, %d beyond it), %d outages over %d daemons; last pass after the recovery: hit %d",
		hit.Load(), pass.Load(), limit, pass.Load()-int64(limit), outages, len(daemons), lastPass.Load())
	if errs.Load() > 0 {
		t.Fatalf("%d hits returned an error", errs.Load())
	}
	if outages == 0 {
		t.Fatal("no daemon noticed the master's death: the test did not test the failover")
	}
	// The storm is stopped: once every daemon is back, nothing passes.
	if lastPass.Load() != 0 {
		t.Fatalf("a message passed after every daemon was back on Redis (hit %d)", lastPass.Load())
	}
	return pass.Load()
}

// The bound asserted by the failover tests, for D daemons and a limit L:
//
//   - before the kill and after the recovery, the hits are counted in
//     Redis, one script each: at most L pass there in all (the count the
//     old master had is on the replica promoted, up to what it had not
//     replicated yet);
//   - from its first failed call until it is back, each daemon counts in
//     its local state file (fail mode open), which starts at zero for that
//     key: up to L more pass at each daemon, D*L in all. The hits in
//     flight when the master dies fail (connection reset, timeout) and are
//     counted locally too: no hit is lost and none passes uncounted;
//   - the hits the old master acknowledged but had not sent its replica
//     when it died are lost with it: the new master's count is lower by
//     that many, at most the hits in flight (D*goroutines), in practice 0
//     on loopback where replication keeps up with the storm.
//
// So at most L + D*L + D*goroutines pass. Measured with D=3, L=40, 4
// goroutines per daemon (11 runs, Redis 7.0.15, down-after and
// cluster-node-timeout 1 s, failovers of 2.3-2.8 s): 100 to 120 beyond
// the limit, Sentinel and Cluster alike, never more than D*L: each
// daemon's local count reaches the limit during the failover, and the
// replication loss was nil. Below D*L when a daemon is back before the
// others reached their local limit, or when the blocks the daemons made
// locally, pushed to Redis when it is back, stop the count Redis had
// before it reaches L. After the recovery nothing passes.
func failoverBound(daemons, goroutines, limit int) int64 {
	return int64(limit + daemons*limit + daemons*goroutines)
}

func testSentinel(t *testing.T, f redisserver.Flavor) {
	s := redisserver.MustStartSentinel(t, f, redisserver.SentinelOptions{DownAfter: time.Second})
	c := newClock()
	t.Run("exact", func(t *testing.T) { exactAcross(t, s.URL(0), c) })
	t.Run("failover", func(t *testing.T) {
		failoverAcross(t, s.URL(1), c, func(ctx context.Context, _ []*Shared) error {
			m, err := s.Master(ctx)
			if err != nil {
				return err
			}
			m.Kill()
			_, err = s.WaitFailover(ctx, m.Addr)
			return err
		})
	})
}

// exactAcross is exactStorm from three clients of the deployment at url.
func exactAcross(t *testing.T, url string, c *clock) {
	var clients []*Redis
	for range 3 {
		clients = append(clients, newRedis(t, url, c))
	}
	exactStorm(t, clients, 8, 25, 100)
}

// failoverAcross is failoverStorm over three daemons sharing the
// deployment at url, each with four goroutines and the limit 40; failover
// kills the master of the storm's key and waits for its replacement. It
// fails the test when more passed than failoverBound.
func failoverAcross(t *testing.T, url string, c *clock, failover func(context.Context, []*Shared) error) {
	const daemons, goroutines, limit = 3, 4, 40
	var ds []*Shared
	for range daemons {
		d, _ := daemon(t, url, c, SharedOptions{FailMode: FailOpen})
		ds = append(ds, d)
	}
	passed := failoverStorm(t, ds, goroutines, limit, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := failover(ctx, ds); err != nil {
			t.Fatal(err)
		}
	})
	if bound := failoverBound(daemons, goroutines, limit); passed > bound {
		t.Fatalf("%d passed during a failover; the bound is %d", passed, bound)
	}
}

func TestSentinel(t *testing.T) { testSentinel(t, redisserver.Redis) }

func testCluster(t *testing.T, f redisserver.Flavor) {
	cl := redisserver.MustStartCluster(t, f, redisserver.ClusterOptions{NodeTimeout: time.Second})
	c := newClock()
	t.Run("exact", func(t *testing.T) { exactAcross(t, cl.URL(), c) })
	t.Run("listing", func(t *testing.T) { clusterListing(t, cl, c) })
	t.Run("failover", func(t *testing.T) {
		failoverAcross(t, cl.URL(), c, func(ctx context.Context, ds []*Shared) error {
			r := ds[0].Redis()
			m, err := r.c.(*redis.ClusterClient).MasterForKey(ctx, r.k("w", state.ID("fwd", "failover-storm")))
			if err != nil {
				return err
			}
			n := cl.Node(m.Options().Addr)
			if n == nil {
				return fmt.Errorf("the storm's master %s is not a node of the cluster", m.Options().Addr)
			}
			n.Kill()
			return cl.WaitFailover(ctx, n)
		})
	})
}

func TestCluster(t *testing.T) { testCluster(t, redisserver.Redis) }

// clusterListing: keys of several rules spread over every master, and
// Blocks, Top, Tracked, Release and Sweep see them all.
func clusterListing(t *testing.T, cl *redisserver.Cluster, c *clock) {
	a, b := newRedis(t, cl.URL(), c), newRedis(t, cl.URL(), c)
	ctx := context.Background()
	if err := a.c.(*redis.ClusterClient).ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		return m.FlushDB(ctx).Err()
	}); err != nil {
		t.Fatal(err)
	}
	const keys = 60
	for i := range keys {
		for _, rule := range []string{"fwd", "ndr"} {
			q := state.Request{Rule: rule, Key: fmt.Sprint("k", i), Window: time.Hour, Limit: 1, BlockFor: time.Hour}
			for range 2 {
				if _, err := a.Hit(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
		}
		c.Advance(time.Millisecond)
	}
	// Every master holds some of them.
	var mu sync.Mutex
	sizes := map[string]int64{}
	err := b.c.(*redis.ClusterClient).ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		n, err := m.DBSize(ctx).Result()
		mu.Lock()
		sizes[m.Options().Addr] = n
		mu.Unlock()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(sizes) != 3 {
		t.Fatalf("%d masters: %v", len(sizes), sizes)
	}
	for addr, n := range sizes {
		if n < 20 {
			t.Errorf("master %s holds %d keys: the keys do not spread", addr, n)
		}
	}
	bs, err := b.Blocks(ctx)
	if err != nil || len(bs) != 2*keys {
		t.Fatalf("Blocks: %d %v; want %d", len(bs), err, 2*keys)
	}
	for i := 1; i < len(bs); i++ {
		if bs[i].Since.Before(bs[i-1].Since) {
			t.Fatal("Blocks not oldest first")
		}
	}
	if n, err := b.Tracked(ctx); err != nil || n != 2*keys {
		t.Fatalf("Tracked: %d %v", n, err)
	}
	if n, err := b.blockCount(ctx); err != nil || n != 2*keys {
		t.Fatalf("blockCount: %d %v", n, err)
	}
	for range 4 {
		if _, err := a.Hit(ctx, state.Request{Rule: "fwd", Key: "hot", Window: time.Hour, Limit: 9, BlockFor: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	top, err := b.Top(ctx, 3)
	if err != nil || len(top) != 3 || top[0].Key != "hot" || top[0].Count != 4 || top[1].Count != 2 {
		t.Fatalf("Top: %+v %v", top, err)
	}
	if n, err := b.Count(ctx, "ndr", "k9"); err != nil || n != 2 {
		t.Fatalf("Count: %d %v", n, err)
	}
	lifted, err := b.Release(ctx, "", "k3")
	if err != nil || len(lifted) != 2 {
		t.Fatalf("Release of a key in both rules: %+v %v", lifted, err)
	}
	lifted, err = b.Release(ctx, "ndr", "")
	if err != nil || len(lifted) != keys-1 {
		t.Fatalf("Release of a rule: %d %v; want %d", len(lifted), err, keys-1)
	}
	if bs, _ := a.Blocks(ctx); len(bs) != keys-1 {
		t.Fatalf("%d blocks left; want %d", len(bs), keys-1)
	}
	if err := a.Push(ctx, state.Block{Rule: "ndr", Key: "pushed", Since: c.Now(), Until: c.Now().Add(time.Hour), Count: 2, Limit: 1, Window: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := b.Blocked(ctx, "ndr", "pushed"); err != nil || !ok {
		t.Fatalf("pushed block: %v %v", ok, err)
	}
	c.Advance(3 * time.Hour)
	if err := a.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Tracked(ctx); err != nil || n != 0 {
		t.Fatalf("Tracked after the sweep: %d %v", n, err)
	}
	for i := range a.buckets {
		if n, _ := a.c.ZCard(ctx, a.buckets[i].keys).Result(); n != 0 {
			t.Fatalf("bucket %d: %d window index entries left after the sweep", i, n)
		}
	}
}

// TestValkey runs the Sentinel and Cluster tests against Valkey when
// Debian ships it here (trixie does; bookworm does not).
func TestValkey(t *testing.T) {
	if err := redisserver.Valkey.Available(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	t.Run("sentinel", func(t *testing.T) { testSentinel(t, redisserver.Valkey) })
	t.Run("cluster", func(t *testing.T) { testCluster(t, redisserver.Valkey) })
}

package redisstore

// The capacity measurements of docs/scaling.md: hits a second one Redis
// (and a cluster) takes from one process, the server's CPU per hit, and the
// bytes a tracked key costs. They run only with LOOPBREAKER_CAPACITY=1:
//
//	LOOPBREAKER_CAPACITY=1 go test -count=1 -run 'TestCapacity' -v ./state/redisstore/

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loopbreaker/loopbreaker/state"
	"github.com/loopbreaker/loopbreaker/testenv/redisserver"
	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

func capacityGate(t *testing.T) {
	if os.Getenv("LOOPBREAKER_CAPACITY") == "" {
		t.Skip("set LOOPBREAKER_CAPACITY=1 to measure Redis's capacity")
	}
}

// capacityRedis is a client (on the real clock) of the package's shared
// server, and its URL, for a capacity measurement, which it skips unless
// asked for.
func capacityRedis(t *testing.T) (*Redis, string) {
	t.Helper()
	capacityGate(t)
	url := sharedServer(t)
	r, err := New(url, Options{Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, url
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// hammer runs clients goroutines hitting distinct keys (each key hit
// once: a storm's first messages from many senders, the costliest case
// for memory and as costly as any for the script) for d, and returns hits
// a second and the servers' CPU µs per hit.
func hammer(t *testing.T, r *Redis, clients int, d time.Duration, pids []int, tag string) (float64, float64) {
	ctx := context.Background()
	var n atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	var cpu0 time.Duration
	for _, p := range pids {
		cpu0 += testproc.CPUTime(p)
	}
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				q := state.Request{Rule: "forward-storm", Key: fmt.Sprintf("%s-%d-%d@corp.example", tag, c, i), Window: 15 * time.Minute, Limit: 25, BlockFor: time.Hour, Subject: "FW: x"}
				if _, err := r.Hit(ctx, q); err != nil {
					t.Error(err)
					return
				}
				n.Add(1)
			}
		})
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	el := time.Since(start).Seconds()
	var cpu1 time.Duration
	for _, p := range pids {
		cpu1 += testproc.CPUTime(p)
	}
	hits := float64(n.Load())
	return hits / el, float64((cpu1 - cpu0).Microseconds()) / hits
}

func usedMemory(t *testing.T, c *redis.Client) int64 {
	s, err := c.Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(s, "\r\n") {
		if v, ok := strings.CutPrefix(l, "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatal("no used_memory")
	return 0
}

func TestCapacitySingle(t *testing.T) {
	r, url := capacityRedis(t)
	pid := srv.Pid()
	t.Logf("load average before: %s", loadavg())
	for _, c := range []int{1, 4, 16, 64} {
		rate, cpu := hammer(t, r, c, 3*time.Second, []int{pid}, "c"+strconv.Itoa(c))
		t.Logf("single redis, %2d clients: %7.0f hits/s, redis CPU %5.1f µs per hit (load %s)", c, rate, cpu, loadavg())
	}

	// Bytes per tracked key: a fresh database, keys senders hit once, then
	// a thousand of them hit 26 times (blocked).
	o, _ := redis.ParseURL(url)
	c := redis.NewClient(o)
	defer c.Close()
	ctx := context.Background()
	if err := c.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	m0 := usedMemory(t, c)
	const keys = 100_000
	for i := 0; i < keys; i++ {
		if _, err := r.Hit(ctx, state.Request{Rule: "forward-storm", Key: "m" + strconv.Itoa(i) + "@corp.example", Window: 15 * time.Minute, Limit: 25, BlockFor: time.Hour, Subject: "FW: x"}); err != nil {
			t.Fatal(err)
		}
	}
	m1 := usedMemory(t, c)
	id := state.ID("forward-storm", "m1@corp.example")
	w, _ := c.MemoryUsage(ctx, r.k("w", id)).Result()
	t.Logf("one hit per key: %d keys, used_memory +%d B = %.0f B per key (MEMORY USAGE of its window %d B; the rest is the indexes)", keys, m1-m0, float64(m1-m0)/keys, w)
	const blocked = 1000
	for i := 0; i < blocked; i++ {
		for j := 0; j < 25; j++ {
			if _, err := r.Hit(ctx, state.Request{Rule: "forward-storm", Key: "m" + strconv.Itoa(i) + "@corp.example", Window: 15 * time.Minute, Limit: 25, BlockFor: time.Hour, Subject: "FW: storm " + strconv.Itoa(j)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	m2 := usedMemory(t, c)
	w, _ = c.MemoryUsage(ctx, r.k("w", id)).Result()
	b, _ := c.MemoryUsage(ctx, r.k("b", id)).Result()
	s, _ := c.MemoryUsage(ctx, r.k("s", id)).Result()
	t.Logf("blocked key (26 hits): +%.0f B per key over one hit; MEMORY USAGE window %d, block %d, samples %d B", float64(m2-m1)/blocked, w, b, s)
}

func TestCapacityCluster(t *testing.T) {
	capacityGate(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := redisserver.StartCluster(ctx, redisserver.Redis, filepath.Join(dir, "c"), redisserver.ClusterOptions{})
	if err != nil {
		t.Skip(err)
	}
	defer cl.Stop()
	if err := cl.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	masters, err := cl.Masters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, m := range masters {
		pids = append(pids, m.Pid())
	}
	r, err := New(cl.URL(), Options{Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, c := range []int{1, 16, 64} {
		rate, cpu := hammer(t, r, c, 3*time.Second, pids, "k"+strconv.Itoa(c))
		t.Logf("cluster of %d masters (+%d replicas), %2d clients: %7.0f hits/s, masters' CPU %5.1f µs per hit (load %s)", len(masters), len(cl.Nodes)-len(masters), c, rate, cpu, loadavg())
	}
}

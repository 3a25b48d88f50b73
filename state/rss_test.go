package state

// The memory measurement of issue 17: a store of LOOPBREAKER_RSS_KEYS keys
// (1M by default) through every phase the daemon goes through, with VmRSS
// sampled every few milliseconds. It runs only with LOOPBREAKER_RSS=1 (it
// takes a minute or more), uses only the package's exported API (so the
// same file measures an older version side by side), and prints one table:
//
//	LOOPBREAKER_RSS=1 go test -count=1 -run 'TestRSS$' -v ./state/
//
// GOMEMLIMIT and GOGC apply as they do to the daemon.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// rssKeepLimit, when set (rss_limit_test.go), starts what the daemon runs
// to bound its memory.
var rssKeepLimit func()

// rssPhase is one phase's figures, in bytes.
type rssPhase struct {
	Name string `json:"name"`
	// Peak is the highest VmRSS sampled during the phase; PeakAnon and
	// PeakFile split that sample; PeakHeap is the highest heap in use
	// (objects, live or not yet collected) sampled.
	Peak     int64 `json:"peak"`
	PeakAnon int64 `json:"peak_anon"`
	PeakFile int64 `json:"peak_file"`
	PeakHeap int64 `json:"peak_heap"`
	// End is VmRSS at the end of the phase, Live the live heap after a GC
	// then.
	End  int64   `json:"end"`
	Live int64   `json:"live"`
	Secs float64 `json:"secs"`
	// CPU is the process's user+system CPU seconds in the phase.
	CPU  float64 `json:"cpu"`
	Keys int     `json:"keys"`
}

// rssSampler samples /proc/self/status while a phase runs.
type rssSampler struct {
	mu    sync.Mutex
	cur   rssPhase
	stop  chan struct{}
	done  chan struct{}
	start time.Time
	cpu0  float64
}

// cpuSeconds is the process's user+system CPU time so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func heapObjects() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// rssProfile writes a heap profile (with the allocations so far) to
// $LOOPBREAKER_RSS_PROFILE/name when that is set: the difference of a
// phase's two (go tool pprof -sample_index=alloc_space -diff_base) is what
// the phase allocated.
func rssProfile(name string) {
	dir := os.Getenv("LOOPBREAKER_RSS_PROFILE")
	if dir == "" {
		return
	}
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		return
	}
	defer f.Close()
	_ = pprof.Lookup("allocs").WriteTo(f, 0)
}

func startPhase(name string) *rssSampler {
	rssProfile(name + ".before")
	p := &rssSampler{cur: rssPhase{Name: name}, stop: make(chan struct{}), done: make(chan struct{}), start: time.Now(), cpu0: cpuSeconds()}
	p.sample()
	go func() {
		defer close(p.done)
		t := time.NewTicker(3 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.sample()
			}
		}
	}()
	return p
}

func (p *rssSampler) sample() {
	st := testproc.Status(0)
	h := heapObjects()
	p.mu.Lock()
	defer p.mu.Unlock()
	if st["VmRSS"] > p.cur.Peak {
		p.cur.Peak, p.cur.PeakAnon, p.cur.PeakFile = st["VmRSS"], st["RssAnon"], st["RssFile"]
	}
	p.cur.PeakHeap = max(p.cur.PeakHeap, h)
}

func (p *rssSampler) end(s *Store) rssPhase {
	rssProfile(p.cur.Name + ".after")
	p.sample()
	close(p.stop)
	<-p.done
	p.cur.Secs = time.Since(p.start).Seconds()
	p.cur.CPU = cpuSeconds() - p.cpu0
	p.cur.End = testproc.Status(0)["VmRSS"]
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	p.cur.Live = int64(m.HeapAlloc)
	if s != nil {
		p.cur.Keys = s.Stats().Windows
	}
	return p.cur
}

// rssKey is the i-th tracked sender.
func rssKey(i int) string { return "s" + strconv.Itoa(i) + "@corp.example" }

func rssReq(key string) Request {
	return Request{Rule: "forward-storm", Key: key, Window: 15 * time.Minute, Limit: 25, BlockFor: time.Hour, Subject: "FW: x"}
}

// rssFeed hits keys from..to-1 at the rate that keeps keys keys live in a
// 15-minute window, flushing every second and sweeping every minute of
// fake time, as the daemon does.
func rssFeed(t *testing.T, s *Store, c *fakeClock, from, to, keys int) {
	ctx := context.Background()
	dt := 15 * time.Minute / time.Duration(keys)
	perSec := max(1, int(time.Second/dt))
	for i := from; i < to; i++ {
		if _, err := s.Hit(ctx, rssReq(rssKey(i))); err != nil {
			t.Fatal(err)
		}
		c.Advance(dt)
		if i%perSec == perSec-1 {
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		if i%(60*perSec) == 60*perSec-1 {
			s.Sweep()
		}
	}
}

func rssKeys(t *testing.T) int { return envKeys(t, "LOOPBREAKER_RSS_KEYS", 1_000_000) }

// envKeys is the number of keys a measurement runs with: $name when set,
// else def.
func envKeys(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

func TestRSS(t *testing.T) {
	if os.Getenv("LOOPBREAKER_RSS") == "" {
		t.Skip("set LOOPBREAKER_RSS=1 to measure the RSS at 1M keys (a minute or more)")
	}
	keys := rssKeys(t)
	if rssKeepLimit != nil {
		rssKeepLimit()
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	c := newClock()
	s := openTest(t, path, c)
	ctx := context.Background()
	var phases []rssPhase

	// fill: keys senders, one message each, at the rate that keeps them
	// all in the window.
	p := startPhase("fill")
	rssFeed(t, s, c, 0, keys, keys)
	phases = append(phases, p.end(s))

	// hits: a second message from a fifth of them (scattered), then the
	// flush of all those windows at once (a second of a heavy storm).
	p = startPhase("hits+flush")
	n := keys / 5
	for j := 0; j < n; j++ {
		if _, err := s.Hit(ctx, rssReq(rssKey(int((uint64(j)*1000003+7)%uint64(keys))))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	phases = append(phases, p.end(s))

	// churn: as many new senders again at the same rate; the old ones
	// expire and are swept minute by minute.
	p = startPhase("churn")
	rssFeed(t, s, c, keys, 2*keys, keys)
	phases = append(phases, p.end(s))

	// sweep: half the window later, the older half expires at once;
	// the sweep and the flush that deletes them from the file.
	p = startPhase("sweep+flush")
	c.Advance(15 * time.Minute / 2)
	s.Sweep()
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	phases = append(phases, p.end(s))

	// refill: a window's worth of new senders, keys live again (a map
	// that was swept grows back).
	p = startPhase("refill")
	rssFeed(t, s, c, 2*keys, 3*keys, keys)
	phases = append(phases, p.end(s))
	live := s.Stats().Windows
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// restart: a fresh process opens the file.
	out := filepath.Join(dir, "restart.json")
	cmd := exec.Command(os.Args[0], "-test.run=^TestRSSRestart$", "-test.count=1")
	cmd.Env = append(os.Environ(), "LOOPBREAKER_RSS_CHILD="+path, "LOOPBREAKER_RSS_OUT="+out, "LOOPBREAKER_RSS_NOW="+strconv.FormatInt(c.Now().UnixNano(), 10), "LOOPBREAKER_RSS_KEYS="+strconv.Itoa(keys))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("restart: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var child []rssPhase
	if err := json.Unmarshal(b, &child); err != nil {
		t.Fatal(err)
	}
	phases = append(phases, child...)
	if len(child) > 0 && child[0].Keys > live {
		t.Errorf("restart loaded %d keys, more than the %d in memory before", child[0].Keys, live)
	}
	fi, _ := os.Stat(path)
	mb := func(n int64) string { return fmt.Sprintf("%6.1f", float64(n)/(1<<20)) }
	t.Logf("keys %d, file %s MB, GOGC=%q GOMEMLIMIT=%q KeepMemoryLimit=%v", keys, mb(fi.Size()), os.Getenv("GOGC"), os.Getenv("GOMEMLIMIT"), rssKeepLimit != nil)
	t.Logf("%-12s %7s %6s %6s %9s %6s %6s %6s %6s %8s", "phase", "peakRSS", "anon", "file", "peakHeap", "end", "live", "secs", "cpu", "keys")
	var worst int64
	for _, ph := range phases {
		t.Logf("%-12s %7s %6s %6s %9s %6s %6s %6.1f %6.1f %8d", ph.Name, mb(ph.Peak), mb(ph.PeakAnon), mb(ph.PeakFile), mb(ph.PeakHeap), mb(ph.End), mb(ph.Live), ph.Secs, ph.CPU, ph.Keys)
		worst = max(worst, ph.Peak)
	}
	t.Logf("highest RSS sampled: %s MB", mb(worst))
}

// TestRSSRestart is TestRSS's restarted daemon, in a process of its own.
func TestRSSRestart(t *testing.T) {
	path := os.Getenv("LOOPBREAKER_RSS_CHILD")
	if path == "" {
		t.Skip("run by TestRSS")
	}
	keys := rssKeys(t)
	if rssKeepLimit != nil {
		rssKeepLimit()
	}
	ns, err := strconv.ParseInt(os.Getenv("LOOPBREAKER_RSS_NOW"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	c := &fakeClock{}
	c.ns.Store(ns)
	var phases []rssPhase
	p := startPhase("restart")
	s := openTest(t, path, c)
	phases = append(phases, p.end(s))

	// after the restart, the same churn as before: the windows loaded
	// expire and new ones come.
	p = startPhase("churn2")
	rssFeed(t, s, c, 4*keys, 4*keys+keys/2, keys)
	phases = append(phases, p.end(s))
	p = startPhase("close")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	phases = append(phases, p.end(nil))
	b, err := json.Marshal(phases)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(os.Getenv("LOOPBREAKER_RSS_OUT"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

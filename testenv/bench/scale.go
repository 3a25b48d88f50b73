package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/loopbreaker/loopbreaker/loopdetect/classify"
	"github.com/loopbreaker/loopbreaker/loopdetect/engine"
	"github.com/loopbreaker/loopbreaker/loopdetect/policy"
	"github.com/loopbreaker/loopbreaker/state"
	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// ScaleResult is the state at one size, measured in a process of its own.
type ScaleResult struct {
	Keys int `json:"keys"`
	// InsertNs is the mean cost of a Hit that creates a key.
	InsertNs float64 `json:"insert_ns"`
	// HitNs is the mean cost of a Hit on a tracked key (keys visited in a
	// scattered order, as mail from many senders would); HitRefNs the same
	// on a store of RefKeys keys in the same process, in alternating
	// batches; HitRatio the median of the per-batch ratios.
	HitNs    float64 `json:"hit_ns"`
	HitRefNs float64 `json:"hit_ref_ns"`
	HitRatio float64 `json:"hit_ratio"`
	// DecideNs is the mean cost of deciding a forwarded NDR whose sender is
	// tracked: classification, the rules, the count; DecideRefNs and
	// DecideRatio as for Hit.
	DecideNs    float64 `json:"decide_ns"`
	DecideRefNs float64 `json:"decide_ref_ns"`
	DecideRatio float64 `json:"decide_ratio"`
	// FlushMaxMs is the slowest of the flushes while filling (one per
	// FlushEvery new keys, as the once-a-second flusher would see them at
	// FlushEvery messages/s).
	FlushMaxMs float64 `json:"flush_max_ms"`
	// FlushDirtyMs is a flush after the measured hits (the keys they touched).
	FlushDirtyMs float64 `json:"flush_dirty_ms"`
	// DirtyKeys is how many keys that flush wrote.
	DirtyKeys int `json:"dirty_keys"`
	// SweepMs is one sweep over every key.
	SweepMs float64 `json:"sweep_ms"`
	// FlushStallMs and SweepStallMs are the longest a Count (which takes
	// the store's lock, as every Hit does) waited while the flush after the
	// hits and the sweep ran: what a message may wait for them.
	FlushStallMs float64 `json:"flush_stall_ms"`
	SweepStallMs float64 `json:"sweep_stall_ms"`
	// IdleStallMs is the same with neither running, for 300 ms: the
	// machine's own scheduling noise.
	IdleStallMs float64 `json:"idle_stall_ms"`
	// FileBytes is the state file's size after the last flush.
	FileBytes int64 `json:"file_bytes"`
	// RSS is VmRSS after filling and a GC; RSSAnon and RSSFile split it
	// (RSSFile is mostly bbolt's memory-mapped file); Peak is VmHWM.
	RSS     int64 `json:"rss"`
	RSSAnon int64 `json:"rss_anon"`
	RSSFile int64 `json:"rss_file"`
	Peak    int64 `json:"peak"`
	// HeapAlloc is the live Go heap at the same moment (after the GC).
	HeapAlloc int64 `json:"heap_alloc"`
	// RSSEnd is VmRSS at the end of the measurement (after the hits,
	// decisions, flushes and the sweep): what the daemon carries in
	// steady state.
	RSSEnd     int64 `json:"rss_end"`
	RSSEndAnon int64 `json:"rss_end_anon"`
	RSSEndFile int64 `json:"rss_end_file"`
	// HeapEnd is the live heap at the end, after a GC.
	HeapEnd int64 `json:"heap_end"`
	// LoadMs, LoadRSS and LoadPeak are from a second fresh process that
	// opens the file (a daemon restart with that many keys).
	LoadMs      float64 `json:"load_ms"`
	LoadRSS     int64   `json:"load_rss"`
	LoadRSSAnon int64   `json:"load_rss_anon"`
	LoadRSSFile int64   `json:"load_rss_file"`
	LoadPeak    int64   `json:"load_peak"`
	LoadHeap    int64   `json:"load_heap"`
}

// MemProfileEnv names an environment variable: when set, the scale child
// writes a heap profile (go tool pprof) to that path after filling, and
// another to that path with ".end" appended at the end of the measurement.
const MemProfileEnv = "LBBENCH_MEMPROFILE"

// CPUProfileEnv names an environment variable: when set, the scale child
// profiles the decisions on the big store and on the reference store apart,
// to PATH.big and PATH.ref. The profiled decisions count again (they stay
// under the limit at 1M keys; at 1k the ref keys may reach it).
const CPUProfileEnv = "LBBENCH_CPUPROFILE"

func profileCPU(path string, f func() error) error {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	defer out.Close()
	if err := pprof.StartCPUProfile(out); err != nil {
		return err
	}
	err = f()
	pprof.StopCPUProfile()
	return err
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// FlushEvery is how many new keys the scale fill writes per flush.
const FlushEvery = 10_000

// scatter visits 0..n-1 in a scattered order: j*stride mod n with a stride
// coprime to the sizes used (powers of ten).
func scatter(j, n int) int { return int((uint64(j)*1000003 + 7) % uint64(n)) }

func scaleKey(i int) string { return "s" + strconv.Itoa(i) + "@" + LocalDomain }

// MeasureScale fills a fresh state in dir with keys tracked senders of the
// forward-storm rule and measures it. It runs in the calling process: call
// it in a process of its own (ScaleChild) for a meaningful RSS.
func MeasureScale(dir string, keys int) (*ScaleResult, error) {
	ctx := context.Background()
	path := filepath.Join(dir, "state.db")
	st, err := state.Open(path, state.Options{FlushInterval: -1, SweepInterval: -1})
	if err != nil {
		return nil, err
	}
	defer func() {
		if st != nil {
			st.Close()
		}
	}()
	p := policy.Default()
	p.Apply(policy.Overrides{LocalDomains: []string{LocalDomain}, QuarantineMailbox: QuarantineMailbox})
	rule, ok := p.Rule("forward-storm")
	if !ok {
		return nil, fmt.Errorf("the default policy has no forward-storm rule")
	}
	req := state.Request{Rule: rule.Name, Window: rule.Window.D(), Limit: rule.Limit, BlockFor: rule.BlockFor.D(), Subject: StormSubject}
	res := &ScaleResult{Keys: keys}

	var inserting time.Duration
	for i := 0; i < keys; {
		start := time.Now()
		for end := min(keys, i+FlushEvery); i < end; i++ {
			req.Key = scaleKey(i)
			if _, err := st.Hit(ctx, req); err != nil {
				return nil, err
			}
		}
		inserting += time.Since(start)
		start = time.Now()
		if err := st.Flush(); err != nil {
			return nil, err
		}
		res.FlushMaxMs = max(res.FlushMaxMs, ms(time.Since(start)))
	}
	res.InsertNs = float64(inserting.Nanoseconds()) / float64(keys)
	runtime.GC()
	status := testproc.Status(0)
	res.RSS, res.RSSAnon, res.RSSFile = status["VmRSS"], status["RssAnon"], status["RssFile"]
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	res.HeapAlloc = int64(ms0.HeapAlloc)
	if p := os.Getenv(MemProfileEnv); p != "" {
		if err := writeHeapProfile(p); err != nil {
			return nil, err
		}
	}

	// The per-message costs are measured side by side with a reference
	// store of RefKeys keys in the same process: batches on the two
	// alternate, and the ratio of each pair is the figure, so that other
	// work on the machine cancels out.
	ref, err := state.Open(filepath.Join(dir, "ref.db"), state.Options{FlushInterval: -1, SweepInterval: -1})
	if err != nil {
		return nil, err
	}
	defer ref.Close()
	for i := 0; i < RefKeys; i++ {
		req.Key = scaleKey(i)
		if _, err := ref.Hit(ctx, req); err != nil {
			return nil, err
		}
	}
	if err := ref.Flush(); err != nil {
		return nil, err
	}

	// Hits on tracked keys, then decisions: 1 + 5 + 19 per key at most, so
	// no key goes over the rule's limit (25) and no block (with its disk
	// commit) starts.
	hitKeys := func(n, keys, offset int) []string {
		out := make([]string, n)
		for j := range out {
			out[j] = scaleKey(scatter(j+offset, keys))
		}
		return out
	}
	hits := min(200_000, 5*keys)
	bigKeys, refKeys := hitKeys(hits, keys, 0), hitKeys(5*RefKeys, RefKeys, 0)
	hitBatch := func(st *state.Store, keys []string) (float64, error) {
		start := time.Now()
		for _, k := range keys {
			r := req
			r.Key = k
			if _, err := st.Hit(ctx, r); err != nil {
				return 0, err
			}
		}
		return float64(time.Since(start).Nanoseconds()) / float64(len(keys)), nil
	}
	res.HitNs, res.HitRefNs, res.HitRatio, err = alternate(
		func(b int) (float64, error) { return hitBatch(st, batch(bigKeys, b)) },
		func(b int) (float64, error) { return hitBatch(ref, batch(refKeys, b)) })
	if err != nil {
		return nil, err
	}

	// Decisions, as the milter asks for them, after a warm-up on ordinary
	// mail (which counts nothing).
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng, engRef := engine.New(p, st, log), engine.New(p, ref, log)
	for i := 0; i < 1000; i++ {
		eng.Decide(ctx, MessageOf(Ordinary(i)))
		engRef.Decide(ctx, MessageOf(Ordinary(i)))
	}
	decisions := min(40_000, 19*keys)
	bigSenders, refSenders := hitKeys(decisions, keys, hits), hitKeys(19*RefKeys, RefKeys, 5*RefKeys)
	decideBatch := func(eng *engine.Engine, senders []string) (float64, error) {
		msg := MessageOf(Storm("x@"+LocalDomain, 1))
		start := time.Now()
		for _, s := range senders {
			msg.Envelope.Sender = s
			if d := eng.Decide(ctx, msg); len(d.Hits) == 0 || d.Action != policy.ActionNone {
				return 0, fmt.Errorf("the storm message was not counted, or was acted on (verdict %s, action %s): the numbers would not be the state's", d.Verdict.Kind, d.Action)
			}
		}
		return float64(time.Since(start).Nanoseconds()) / float64(len(senders)), nil
	}
	res.DecideNs, res.DecideRefNs, res.DecideRatio, err = alternate(
		func(b int) (float64, error) { return decideBatch(eng, batch(bigSenders, b)) },
		func(b int) (float64, error) { return decideBatch(engRef, batch(refSenders, b)) })
	if err != nil {
		return nil, err
	}
	if p := os.Getenv(CPUProfileEnv); p != "" {
		// The same decisions again, profiled apart: PATH.big on the big
		// store, PATH.ref on the reference store.
		// Big: every tracked sender once more, in scattered order (no
		// key reaches the limit). Ref: its 1k senders over and over; the
		// blocks that start are released after each pass.
		for _, run := range []struct {
			suffix string
			eng    *engine.Engine
			st     *state.Store
			keys   int
		}{{".big", eng, st, keys}, {".ref", engRef, ref, RefKeys}} {
			msg := MessageOf(Storm("x@"+LocalDomain, 1))
			if err := profileCPU(p+run.suffix, func() error {
				for j, start := 0, time.Now(); time.Since(start) < 3*time.Second; j++ {
					msg.Envelope.Sender = scaleKey(scatter(j, run.keys))
					run.eng.Decide(ctx, msg)
					if j%run.keys == run.keys-1 {
						if _, err := run.st.Release(ctx, rule.Name, ""); err != nil {
							return err
						}
					}
				}
				return nil
			}); err != nil {
				return nil, err
			}
		}
	}

	res.DirtyKeys = st.Stats().Dirty
	var start time.Time
	res.FlushStallMs = stalls(st, rule.Name, scaleKey(0), func() {
		start = time.Now()
		err = st.Flush()
		res.FlushDirtyMs = ms(time.Since(start))
	})
	if err != nil {
		return nil, err
	}
	res.IdleStallMs = stalls(st, rule.Name, scaleKey(0), func() { time.Sleep(300 * time.Millisecond) })
	res.SweepStallMs = stalls(st, rule.Name, scaleKey(0), func() {
		start = time.Now()
		st.Sweep()
		res.SweepMs = ms(time.Since(start))
	})
	if fi, err := os.Stat(path); err == nil {
		res.FileBytes = fi.Size()
	}
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	res.HeapEnd = int64(ms0.HeapAlloc)
	if p := os.Getenv(MemProfileEnv); p != "" {
		if err := writeHeapProfile(p + ".end"); err != nil {
			return nil, err
		}
	}
	status = testproc.Status(0)
	res.RSSEnd, res.RSSEndAnon, res.RSSEndFile, res.Peak = status["VmRSS"], status["RssAnon"], status["RssFile"], status["VmHWM"]
	err = st.Close()
	st = nil
	return res, err
}

// MeasureLoad opens the state file in dir, as a restarted daemon does, and
// reports the time, the RSS after a GC and the peak RSS.
func MeasureLoad(dir string, keys int) (*ScaleResult, error) {
	start := time.Now()
	st, err := state.Open(filepath.Join(dir, "state.db"), state.Options{FlushInterval: -1, SweepInterval: -1})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	res := &ScaleResult{Keys: keys, LoadMs: ms(time.Since(start))}
	if n := st.Stats().Windows; n != keys {
		return nil, fmt.Errorf("loaded %d keys, want %d", n, keys)
	}
	runtime.GC()
	status := testproc.Status(0)
	res.LoadRSS, res.LoadRSSAnon, res.LoadRSSFile, res.LoadPeak = status["VmRSS"], status["RssAnon"], status["RssFile"], status["VmHWM"]
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	res.LoadHeap = int64(m.HeapAlloc)
	return res, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// stalls runs f while another goroutine asks st for a count over and over,
// and returns the longest one of those calls took, in ms.
func stalls(st *state.Store, rule, key string, f func()) float64 {
	return ms(testproc.LongestStall(func() { st.Count(rule, key) }, f))
}

// RefKeys is the size of the reference store the per-message costs are
// compared with, and ScaleBatches the number of batch pairs.
const (
	RefKeys      = 1000
	ScaleBatches = 10
)

// batch returns the b-th of ScaleBatches parts of xs.
func batch(xs []string, b int) []string {
	return xs[b*len(xs)/ScaleBatches : (b+1)*len(xs)/ScaleBatches]
}

// alternate runs ScaleBatches pairs of batches, big and ref in turn (the
// order flips every pair), and returns the median ns of each and the
// median of the per-pair ratios big/ref.
func alternate(big, ref func(b int) (float64, error)) (bigNs, refNs, ratio float64, err error) {
	var bs, rs, qs []float64
	for b := 0; b < ScaleBatches; b++ {
		var x, y float64
		if b%2 == 0 {
			if x, err = big(b); err == nil {
				y, err = ref(b)
			}
		} else {
			if y, err = ref(b); err == nil {
				x, err = big(b)
			}
		}
		if err != nil {
			return 0, 0, 0, err
		}
		bs, rs, qs = append(bs, x), append(rs, y), append(qs, x/y)
	}
	return Median(bs), Median(rs), Median(qs), nil
}

var unfolder = strings.NewReplacer("\r\n", "", "\n", "", "\r", "")

// MessageOf builds the classify.Message the milter would build for m:
// unfolded header values, the body.
func MessageOf(m *Mail) *classify.Message {
	var h textproto.Header
	for _, f := range m.Header {
		h.Add(f[0], unfolder.Replace(f[1]))
	}
	return &classify.Message{
		Envelope: classify.Envelope{Sender: m.Sender, Recipients: append([]string(nil), m.Recipients...)},
		Header:   h,
		Body:     m.Body,
	}
}

// ScaleChildArg is the argument that makes lbbench run MeasureScale and
// print its result as JSON (see RunScale).
const ScaleChildArg = "scale-child"

// RunScale runs MeasureScale for each size in a fresh process: exe
// ScaleChildArg KEYS DIR.
func RunScale(ctx context.Context, exe, dir string, sizes []int, progress io.Writer) ([]*ScaleResult, error) {
	var out []*ScaleResult
	for _, n := range sizes {
		d, err := os.MkdirTemp(dir, "scale-")
		if err != nil {
			return nil, err
		}
		var r, l ScaleResult
		if err := runChild(ctx, exe, &r, "fill", strconv.Itoa(n), d); err != nil {
			return nil, fmt.Errorf("scale %d keys: %w", n, err)
		}
		if err := runChild(ctx, exe, &l, "load", strconv.Itoa(n), d); err != nil {
			return nil, fmt.Errorf("scale %d keys, load: %w", n, err)
		}
		os.RemoveAll(d)
		r.LoadMs, r.LoadRSS, r.LoadRSSAnon, r.LoadRSSFile, r.LoadPeak, r.LoadHeap = l.LoadMs, l.LoadRSS, l.LoadRSSAnon, l.LoadRSSFile, l.LoadPeak, l.LoadHeap
		fmt.Fprintf(progress, "  scale %8d keys: hit %.0f ns, decide %.1f µs, heap %s, RSS %s (end %s, peak %s, after restart %s), file %s\n",
			n, r.HitNs, r.DecideNs/1000, MB(r.HeapAlloc), MB(r.RSS), MB(r.RSSEnd), MB(r.Peak), MB(r.LoadRSS), MB(r.FileBytes))
		out = append(out, &r)
	}
	return out, nil
}

func runChild(ctx context.Context, exe string, r *ScaleResult, args ...string) error {
	cmd := exec.CommandContext(ctx, exe, append([]string{ScaleChildArg}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%w\n%s", err, stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), r); err != nil {
		return fmt.Errorf("%w: %q", err, stdout.String())
	}
	return nil
}

// ScaleChild is the child's side: "fill KEYS DIR" runs MeasureScale,
// "load KEYS DIR" MeasureLoad; the result goes to stdout as JSON.
func ScaleChild(args []string, stdout io.Writer) error {
	if len(args) != 3 || (args[0] != "fill" && args[0] != "load") {
		return fmt.Errorf("usage: %s fill|load KEYS DIR", ScaleChildArg)
	}
	n, err := strconv.Atoi(args[1])
	if err != nil || n < 1 {
		return fmt.Errorf("bad key count %q", args[1])
	}
	measure := MeasureScale
	if args[0] == "load" {
		measure = MeasureLoad
	}
	r, err := measure(args[2], n)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(r)
}

// WriteScaleTable prints the scale results as two Markdown tables: cost
// per message, then memory and the pauses.
func WriteScaleTable(w io.Writer, rs []*ScaleResult) {
	fmt.Fprintf(w, "| tracked keys | Decide, forwarded NDR from a tracked sender | the same with %s keys | **ratio** | Hit, tracked key | the same with %s keys | ratio | Hit, new key |\n", count(RefKeys), count(RefKeys))
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rs {
		fmt.Fprintf(w, "| %s | %.1f µs | %.1f µs | **%.2f×** | %.0f ns | %.0f ns | %.2f× | %.0f ns |\n",
			count(r.Keys), r.DecideNs/1000, r.DecideRefNs/1000, r.DecideRatio, r.HitNs, r.HitRefNs, r.HitRatio, r.InsertNs)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| tracked keys | live Go heap after filling (per key) / at the end | RSS after filling (anon + file) | RSS at the end (anon + file) | peak RSS | RSS after a restart (anon + file; live heap; load time) | state file | slowest flush while filling | flush after the hits (longest wait of a concurrent Count) | sweep (longest wait of a concurrent Count) | longest wait of a Count with neither |")
	fmt.Fprintln(w, "|---:|---|---|---|---|---|---:|---:|---:|---:|---:|")
	for _, r := range rs {
		fmt.Fprintf(w, "| %s | %s (%d B) / %s | %s (%s + %s) | %s (%s + %s) | %s | %s (%s + %s; %s; %.0f ms) | %s | %.0f ms | %.0f ms, %d keys (%.1f ms) | %.1f ms (%.1f ms) | %.1f ms |\n",
			count(r.Keys), MB(r.HeapAlloc), r.HeapAlloc/int64(r.Keys), MB(r.HeapEnd), MB(r.RSS), MB(r.RSSAnon), MB(r.RSSFile),
			MB(r.RSSEnd), MB(r.RSSEndAnon), MB(r.RSSEndFile), MB(r.Peak), MB(r.LoadRSS), MB(r.LoadRSSAnon), MB(r.LoadRSSFile), MB(r.LoadHeap), r.LoadMs, MB(r.FileBytes),
			r.FlushMaxMs, r.FlushDirtyMs, r.DirtyKeys, r.FlushStallMs, r.SweepMs, r.SweepStallMs, r.IdleStallMs)
	}
}

func count(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return strconv.Itoa(n/1_000_000) + "M"
	case n >= 1000 && n%1000 == 0:
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}

// Package soak runs loopbreaker behind a real Postfix for a long time with
// mixed ordinary and storm mail (`make soak`, issue 9): first it measures
// what Postfix alone sustains on this machine, then it sends at a fraction
// of that (80 % by default) through Postfix and the daemon, samples the
// daemon's RSS and goroutines from its metrics endpoint, and at the end
// accounts for every message: sent = delivered + held + quarantined +
// rejected.
package soak

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/loopbreaker/loopbreaker/testenv"
	"github.com/loopbreaker/loopbreaker/testenv/postfix"
	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// Config sizes a soak run.
type Config struct {
	Duration time.Duration // of the loaded phase
	Baseline time.Duration // of the Postfix-alone measurement
	Fraction float64       // of the Postfix-alone rate to send at
	Sample   time.Duration // metrics sampling interval
	Workers  int           // concurrent SMTP sessions at most
	Dir      string        // work directory (logs, state, queue)
	Daemon   string        // a loopbreaker binary; empty: build ./cmd/loopbreaker
}

func (c *Config) defaults() {
	if c.Duration == 0 {
		c.Duration = 30 * time.Minute
	}
	if c.Baseline == 0 {
		c.Baseline = 60 * time.Second
	}
	if c.Fraction == 0 {
		c.Fraction = 0.8
	}
	if c.Sample == 0 {
		c.Sample = 30 * time.Second
	}
	if c.Workers == 0 {
		c.Workers = 16
	}
}

// Sample is one look at the daemon and the queue.
type Sample struct {
	At         time.Duration // since the loaded phase started
	RSS        float64       // process_resident_memory_bytes
	Goroutines float64       // go_goroutines
	HeapInuse  float64       // go_memstats_heap_inuse_bytes
	Keys       float64       // loopbreaker_tracked_keys
	Blocks     float64       // loopbreaker_active_blocks
	Sent       int64
	Queued     int // incoming + active + deferred
}

// Result is what a run measured.
type Result struct {
	BaselineRate float64 // messages/s Postfix alone delivered end to end
	TargetRate   float64
	AchievedRate float64
	Samples      []Sample
	IdleBefore   Sample // before any load
	IdleAfter    Sample // after the queue drained
	Sent         [numKinds]int64
	Delivered    [numKinds]int
	Quarantined  [numKinds]int
	Rejected     [numKinds]int64
	Held         int
	Tempfailed   int64 // 4xx replies (none expected)
	Errors       int64 // other send failures (none expected)
	Lost         int   // accepted by Postfix, found nowhere
	Duplicates   int
	Misrouted    []string // a message whose fate its kind forbids
	DaemonErrors string   // loopbreaker_errors_total lines
	Elapsed      time.Duration
}

// Accounted reports whether every message sent ended somewhere, once.
func (r *Result) Accounted() bool {
	return r.Lost == 0 && r.Duplicates == 0 && r.Tempfailed == 0 && r.Errors == 0 && len(r.Misrouted) == 0
}

// Totals sums the fates over kinds.
func (r *Result) Totals() (sent, delivered, held, quarantined, rejected int64) {
	for k := range numKinds {
		sent += r.Sent[k]
		delivered += int64(r.Delivered[k])
		quarantined += int64(r.Quarantined[k])
		rejected += r.Rejected[k]
	}
	return sent, delivered, int64(r.Held), quarantined, rejected
}

// loadedSamples are the samples of the loaded phase.
func (r *Result) loadedSamples() []Sample { return r.Samples }

// MemoryFlat reports whether RSS stopped growing once warm: the largest
// RSS of the last quarter of the run is within 20 % (plus 8 MB) of the
// largest of the second quarter.
func (r *Result) MemoryFlat() (bool, string) {
	s := r.loadedSamples()
	if len(s) < 4 {
		return true, "too few samples to judge"
	}
	q := len(s) / 4
	warm := maxOf(s[q:2*q], func(x Sample) float64 { return x.RSS })
	late := maxOf(s[len(s)-q:], func(x Sample) float64 { return x.RSS })
	ok := late <= warm*1.2+8<<20
	return ok, fmt.Sprintf("RSS max second quarter %s, last quarter %s (first sample %s, last %s)",
		mb(warm), mb(late), mb(s[0].RSS), mb(s[len(s)-1].RSS))
}

// GoroutinesFlat reports whether goroutines did not grow: idle after the
// run within 5 of idle before it, and the loaded maximum of the last
// quarter not above that of the first quarter by more than half plus 20.
func (r *Result) GoroutinesFlat() (bool, string) {
	s := r.loadedSamples()
	ok := r.IdleAfter.Goroutines <= r.IdleBefore.Goroutines+5
	msg := fmt.Sprintf("idle before %.0f, idle after %.0f", r.IdleBefore.Goroutines, r.IdleAfter.Goroutines)
	if len(s) >= 4 {
		q := len(s) / 4
		early := maxOf(s[:q], func(x Sample) float64 { return x.Goroutines })
		late := maxOf(s[len(s)-q:], func(x Sample) float64 { return x.Goroutines })
		ok = ok && late <= early*1.5+20
		msg += fmt.Sprintf("; under load max first quarter %.0f, last quarter %.0f", early, late)
	}
	return ok, msg
}

func maxOf(s []Sample, f func(Sample) float64) float64 {
	m := 0.0
	for _, x := range s {
		m = max(m, f(x))
	}
	return m
}

func mb(b float64) string { return fmt.Sprintf("%.1f MB", b/(1<<20)) }

// Run runs a soak and reports progress to w.
func Run(ctx context.Context, cfg Config, w io.Writer) (*Result, error) {
	cfg.defaults()
	if err := postfix.Available(); err != nil {
		return nil, err
	}
	if cfg.Dir == "" {
		return nil, errors.New("soak: Config.Dir is required")
	}
	start := time.Now()
	bin := cfg.Daemon
	if bin == "" {
		var err error
		if bin, err = build(ctx, cfg.Dir); err != nil {
			return nil, err
		}
	}
	sink, err := startSink(ctx, Quarantine)
	if err != nil {
		return nil, err
	}
	defer sink.Close()

	milterPort, err := testproc.FreePort(ctx, "")
	if err != nil {
		return nil, err
	}
	metricsPort, err := testproc.FreePort(ctx, "")
	if err != nil {
		return nil, err
	}
	metricsAddr := "127.0.0.1:" + strconv.Itoa(metricsPort)
	daemonLog := filepath.Join(cfg.Dir, "loopbreaker.log")
	if err := os.WriteFile(daemonLog, nil, 0o644); err != nil {
		return nil, err
	}
	daemon, err := testproc.Start("loopbreaker", daemonLog, bin, "serve", "-listen", "inet:"+strconv.Itoa(milterPort)+"@127.0.0.1",
		"-state", filepath.Join(cfg.Dir, "state.db"), "-metrics", metricsAddr,
		"-local-domains", localDomain, "-quarantine-mailbox", Quarantine)
	if err != nil {
		return nil, err
	}
	defer daemon.Stop(40 * time.Second)
	if err := daemon.WaitReady(ctx, func(context.Context) error { return getOK("http://" + metricsAddr + "/metrics") }); err != nil {
		return nil, fmt.Errorf("daemon: %w (log in %s)", err, daemonLog)
	}

	bareSMTP, err := testproc.FreePort(ctx, "")
	if err != nil {
		return nil, err
	}
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	inst, err := postfix.Start(startCtx, postfix.Config{
		Dir:        cfg.Dir,
		Name:       "soak",
		MyHostname: "hub." + localDomain,
		MyDomain:   localDomain,
		RelayHost:  sink.Nexthop(),
		Milters:    "inet:127.0.0.1:" + strconv.Itoa(milterPort),
		// A second smtpd without the milter, for the Postfix-alone figure.
		MasterCF: []string{fmt.Sprintf("127.0.0.1:%d inet n - n - - smtpd -o smtpd_milters=", bareSMTP)},
		// A milter that fails shows as tempfails, never as mail passing
		// unfiltered.
		MainCF: map[string]string{"milter_default_action": "tempfail"},
	})
	cancel()
	if err != nil {
		return nil, err
	}
	defer inst.Stop()

	res := &Result{}
	scrape := func() Sample {
		s, err := scrapeMetrics("http://" + metricsAddr + "/metrics")
		if err != nil {
			fmt.Fprintf(w, "soak: metrics: %v\n", err)
		}
		q, _ := inst.QueueCount()
		s.Queued = q
		return s
	}
	time.Sleep(2 * time.Second)
	res.IdleBefore = scrape()

	// 1. Postfix alone: closed loop, ordinary mail, Workers sessions.
	fmt.Fprintf(w, "soak: measuring Postfix alone for %s with %d sessions...\n", cfg.Baseline, cfg.Workers)
	baseSeq := baselineSeq // out of the soak's range: the sink keeps them apart
	var baseN atomic.Int64
	bctx, bcancel := context.WithTimeout(ctx, cfg.Baseline)
	bstart := time.Now()
	var bwg sync.WaitGroup
	for i := 0; i < cfg.Workers; i++ {
		bwg.Add(1)
		go func() {
			defer bwg.Done()
			for bctx.Err() == nil {
				n := int(baseN.Add(1))
				m := newMail(n*100, 0) // an ordinary one
				m.data = []byte(strings.Replace(string(m.data), SeqHeader+": "+strconv.Itoa(n*100), SeqHeader+": "+strconv.Itoa(baseSeq+n), 1))
				sctx, c := context.WithTimeout(ctx, time.Minute)
				_ = testenv.SendMail(sctx, "127.0.0.1:"+strconv.Itoa(bareSMTP), m.from, []string{m.to}, m.data)
				c()
			}
		}()
	}
	bwg.Wait()
	bcancel()
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Minute)
	err = inst.WaitQueueEmpty(wctx)
	wcancel()
	if err != nil {
		return nil, err
	}
	res.BaselineRate = float64(baseN.Load()) / time.Since(bstart).Seconds()
	res.TargetRate = res.BaselineRate * cfg.Fraction
	fmt.Fprintf(w, "soak: Postfix alone: %d messages, %.1f msg/s end to end; soak at %.0f%%: %.1f msg/s for %s\n",
		baseN.Load(), res.BaselineRate, cfg.Fraction*100, res.TargetRate, cfg.Duration)

	// 2. The soak: paced, mixed, through the milter.
	var sent [numKinds]atomic.Int64
	var rejected [numKinds]atomic.Int64
	var tempfailed, failed atomic.Int64
	accepted := make([]atomic.Bool, int(res.TargetRate*cfg.Duration.Seconds())+1024)
	var firstErr sync.Once
	jobs := make(chan int, cfg.Workers)
	soakStart := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < cfg.Workers*2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := range jobs {
				storm := int(time.Since(soakStart) / StormPeriod)
				m := newMail(seq, storm)
				sctx, c := context.WithTimeout(ctx, 2*time.Minute)
				err := testenv.SendMail(sctx, inst.SMTPAddr(), m.from, []string{m.to}, m.data)
				c()
				sent[m.kind].Add(1)
				var se *smtp.SMTPError
				switch {
				case err == nil:
					accepted[seq].Store(true)
				case errors.As(err, &se) && se.Code/100 == 5:
					rejected[m.kind].Add(1)
				case errors.As(err, &se) && se.Code/100 == 4:
					tempfailed.Add(1)
					firstErr.Do(func() { fmt.Fprintf(w, "soak: first tempfail: %v\n", err) })
				default:
					failed.Add(1)
					firstErr.Do(func() { fmt.Fprintf(w, "soak: first send error: %v\n", err) })
				}
			}
		}()
	}
	sampleDone := make(chan struct{})
	var samplesMu sync.Mutex
	var sentTotal atomic.Int64
	go func() {
		defer close(sampleDone)
		t := time.NewTicker(cfg.Sample)
		defer t.Stop()
		for {
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
			s := scrape()
			s.At = time.Since(soakStart).Round(time.Second)
			s.Sent = sentTotal.Load()
			samplesMu.Lock()
			res.Samples = append(res.Samples, s)
			samplesMu.Unlock()
			fmt.Fprintf(w, "soak: %8s sent %7d (%.1f/s)  RSS %9s  heap %9s  goroutines %4.0f  keys %6.0f  blocks %3.0f  queued %d\n",
				s.At, s.Sent, float64(s.Sent)/s.At.Seconds(), mb(s.RSS), mb(s.HeapInuse), s.Goroutines, s.Keys, s.Blocks, s.Queued)
			if s.At >= cfg.Duration {
				return
			}
		}
	}()
	interval := time.Duration(float64(time.Second) / res.TargetRate)
	seq := 0
	for ; seq < len(accepted); seq++ {
		due := soakStart.Add(time.Duration(seq) * interval)
		if time.Since(soakStart) >= cfg.Duration {
			break
		}
		if d := time.Until(due); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		jobs <- seq
		sentTotal.Add(1)
	}
	close(jobs)
	wg.Wait()
	loaded := time.Since(soakStart)
	res.AchievedRate = float64(seq) / loaded.Seconds()
	<-sampleDone
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	fmt.Fprintf(w, "soak: sent %d in %s (%.1f msg/s); waiting for the queue to drain...\n", seq, loaded.Round(time.Second), res.AchievedRate)
	wctx, wcancel = context.WithTimeout(ctx, 10*time.Minute)
	err = inst.WaitQueueEmpty(wctx)
	wcancel()
	if err != nil {
		return nil, err
	}
	time.Sleep(5 * time.Second) // sessions wind down
	res.IdleAfter = scrape()
	res.IdleAfter.At = time.Since(soakStart).Round(time.Second)

	// 3. Accounting.
	if res.Held, err = inst.HeldCount(); err != nil {
		return nil, err
	}
	for k := range numKinds {
		res.Sent[k] = sent[k].Load()
		res.Rejected[k] = rejected[k].Load()
	}
	res.Tempfailed, res.Errors = tempfailed.Load(), failed.Load()
	var heldByKind int
	for i := 0; i < seq; i++ {
		k := kindOf(i)
		f := sink.fate(i)
		switch f {
		case fateDelivered:
			res.Delivered[k]++
		case fateQuarantined:
			res.Quarantined[k]++
		}
		if !accepted[i].Load() {
			if f != fateNone {
				res.Misrouted = append(res.Misrouted, fmt.Sprintf("message %d (%s) refused and delivered", i, k))
			}
			continue
		}
		if f == fateNone {
			if k == Hops {
				heldByKind++ // held mail never reaches the sink
				continue
			}
			res.Lost++
		}
		switch {
		case k == Ordinary && f != fateDelivered:
			res.Misrouted = append(res.Misrouted, fmt.Sprintf("ordinary message %d not delivered", i))
		case k == Hops && f != fateNone:
			res.Misrouted = append(res.Misrouted, fmt.Sprintf("hop-ceiling message %d not held", i))
		}
		if len(res.Misrouted) > 20 {
			break
		}
	}
	if heldByKind != res.Held {
		// Something else is held (or a hop-ceiling message is missing).
		res.Lost += max(0, heldByKind-res.Held)
		if res.Held > heldByKind {
			res.Misrouted = append(res.Misrouted, fmt.Sprintf("%d held messages, only %d hop-ceiling ones sent and accepted", res.Held, heldByKind))
		}
	}
	for k := range numKinds {
		if int64(res.Delivered[k]+res.Quarantined[k])+res.Rejected[k] > res.Sent[k] {
			res.Misrouted = append(res.Misrouted, fmt.Sprintf("%s: more fates than messages", Kind(k)))
		}
	}
	_, res.Duplicates, _ = sink.counts()
	res.DaemonErrors = grepMetrics("http://"+metricsAddr+"/metrics", "loopbreaker_errors_total")
	res.Elapsed = time.Since(start)
	return res, nil
}

// Report prints the result and whether it passed.
func (r *Result) Report(w io.Writer) bool {
	sent, delivered, held, quarantined, rejected := r.Totals()
	fmt.Fprintf(w, "\nPostfix alone: %.1f msg/s; target %.1f msg/s; achieved %.1f msg/s\n", r.BaselineRate, r.TargetRate, r.AchievedRate)
	fmt.Fprintf(w, "%-14s %8s %10s %6s %12s %9s\n", "kind", "sent", "delivered", "held", "quarantined", "rejected")
	for k := range numKinds {
		h := 0
		if Kind(k) == Hops {
			h = r.Held
		}
		fmt.Fprintf(w, "%-14s %8d %10d %6d %12d %9d\n", Kind(k), r.Sent[k], r.Delivered[k], h, r.Quarantined[k], r.Rejected[k])
	}
	fmt.Fprintf(w, "%-14s %8d %10d %6d %12d %9d\n", "total", sent, delivered, held, quarantined, rejected)
	acc := r.Accounted() && sent == delivered+held+quarantined+rejected
	fmt.Fprintf(w, "accounted: sent %d = delivered %d + held %d + quarantined %d + rejected %d: %v (tempfailed %d, send errors %d, lost %d, duplicates %d)\n",
		sent, delivered, held, quarantined, rejected, acc, r.Tempfailed, r.Errors, r.Lost, r.Duplicates)
	for _, m := range r.Misrouted {
		fmt.Fprintln(w, "  ", m)
	}
	memOK, memMsg := r.MemoryFlat()
	gorOK, gorMsg := r.GoroutinesFlat()
	fmt.Fprintf(w, "memory flat: %v (%s; idle before %s, idle after %s)\n", memOK, memMsg, mb(r.IdleBefore.RSS), mb(r.IdleAfter.RSS))
	fmt.Fprintf(w, "goroutines flat: %v (%s)\n", gorOK, gorMsg)
	if r.DaemonErrors != "" {
		fmt.Fprintf(w, "daemon errors: %s\n", r.DaemonErrors)
	}
	fmt.Fprintf(w, "total time %s\n", r.Elapsed.Round(time.Second))
	return acc && memOK && gorOK
}

func build(ctx context.Context, dir string) (string, error) {
	return testenv.Build(ctx, dir, "./cmd/loopbreaker", false)
}

// getOK reports whether url answers a GET.
func getOK(url string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// scrapeMetrics reads the figures a Sample holds from the metrics endpoint.
func scrapeMetrics(url string) (Sample, error) {
	var s Sample
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			continue
		}
		switch name {
		case "process_resident_memory_bytes":
			s.RSS = v
		case "go_goroutines":
			s.Goroutines = v
		case "go_memstats_heap_inuse_bytes":
			s.HeapInuse = v
		case "loopbreaker_tracked_keys":
			s.Keys = v
		case "loopbreaker_active_blocks":
			s.Blocks = v
		}
	}
	return s, sc.Err()
}

func grepMetrics(url, prefix string) string {
	resp, err := http.Get(url)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var out []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), prefix) {
			out = append(out, sc.Text())
		}
	}
	return strings.Join(out, "; ")
}

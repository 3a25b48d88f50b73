// Package replay runs stored mail (an mbox, a Maildir, a tree of message
// files) through loopbreaker's own classifier, policy and engine, on a
// clock taken from each message, and reports what the daemon would have
// done: when each block would have started and how long it lasted, which
// ordinary messages a rule would have touched, how close the busiest keys
// came to their limits, and what other limits would have done (-set).
//
// Nothing here decides anything: every message goes through
// engine.Engine.DecideFrom over a state.Store of its own (a temporary
// bbolt file unless the caller names one), exactly as in the daemon. The
// package only reads the messages, sets the clock and the envelope, and
// watches the decisions.
package replay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-mbox"

	"github.com/loopbreaker/loopbreaker/loopdetect/classify"
	"github.com/loopbreaker/loopbreaker/loopdetect/engine"
	"github.com/loopbreaker/loopbreaker/loopdetect/policy"
	"github.com/loopbreaker/loopbreaker/state"
)

// Config says what to replay with.
type Config struct {
	// Policy is the policy as the daemon would load it (file, overrides).
	Policy *policy.Policy
	// Sets are the -set changes: single values change the policy of the
	// main run, several values give what-if variants (one engine and
	// store each, fed every message).
	Sets []Set
	// Mailbox says how the envelope is read (Inbound when "").
	Mailbox Mailbox
	// StatePath is the main run's state file; "" for a temporary one,
	// removed afterwards. Variants always count in temporary files.
	StatePath string
	// TempDir holds the temporary files (os.TempDir() when "").
	TempDir string
	// Stdin is read for the source "-".
	Stdin io.Reader
	// Progress receives progress lines; nil for none.
	Progress io.Writer
	// Log receives the engine's and the store's logs; discarded when nil.
	Log *slog.Logger
	// MemoryBudget is how many bytes of messages are kept in memory between
	// the scan and the replay (the rest is read again); 256 MiB when 0.
	MemoryBudget int64
	// TopKeys is how many keys per rule the report lists; 5 when 0.
	TopKeys int
	// Now is the wall clock for the run's own timing; time.Now when nil.
	Now func() time.Time
}

// run is one engine over one store, with what it was seen to do.
type run struct {
	label   string
	changes []change
	pol     *policy.Policy
	store   *state.Store
	eng     *engine.Engine
	path    string
	temp    bool
	main    bool

	rules   map[string]*RuleReport
	open    map[string]*BlockReport // rule\x00key -> the last block
	passed  map[string]int          // rule\x00key -> hits let through
	blocks  []*BlockReport
	touched []Touched
	times   map[string][]int64 // rule\x00key -> hit times (Unix ms), main run only
}

// Run reads the sources, replays their messages in time order and reports.
func Run(ctx context.Context, cfg Config, sources []string) (*Report, error) {
	if cfg.Policy == nil {
		cfg.Policy = policy.Default()
	}
	if cfg.Policy.CurrentMode() != policy.ModeEnforce {
		// The report is what enforcing the policy would do, whatever the
		// mode the daemon runs it in.
		p := *cfg.Policy
		p.Mode, p.FileMode = policy.ModeEnforce, ""
		cfg.Policy = &p
	}
	if cfg.Mailbox == "" {
		cfg.Mailbox = Inbound
	}
	if cfg.MemoryBudget == 0 {
		cfg.MemoryBudget = 256 << 20
	}
	if cfg.TopKeys == 0 {
		cfg.TopKeys = 5
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Stdin == nil {
		cfg.Stdin = os.Stdin
	}
	if len(sources) == 0 {
		return nil, errors.New("no SOURCE given")
	}
	started := cfg.Now()
	baseChanges, combos, err := variants(cfg.Sets)
	if err != nil {
		return nil, err
	}
	basePol, err := apply(cfg.Policy, baseChanges)
	if err != nil {
		return nil, err
	}
	var varPols []*policy.Policy
	for _, c := range combos {
		p, err := apply(basePol, c)
		if err != nil {
			return nil, err
		}
		varPols = append(varPols, p)
	}

	tmp, err := os.MkdirTemp(cfg.TempDir, "loopbreaker-replay-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	// The clock every store reads: the time of the message being replayed.
	var clock atomic.Int64
	now := func() time.Time { return time.Unix(0, clock.Load()) }

	prog := newProgress(cfg.Progress)
	sc := &scanner{budget: cfg.MemoryBudget, progress: prog, tmpDir: tmp, stdin: cfg.Stdin}
	rep := &Report{Policy: cfg.Policy.Source, Mailbox: string(cfg.Mailbox), Notes: cfg.Policy.Notes()}
	for _, c := range baseChanges {
		rep.Changes = append(rep.Changes, c.String())
	}
	var total int64
	for _, src := range sources {
		if src == "-" {
			continue
		}
		total += sizeOf(src)
	}
	prog.begin("reading", total, true)
	for _, src := range sources {
		st, err := sc.scanSource(src)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
		rep.Sources = append(rep.Sources, st)
	}
	prog.end()
	items := sc.finish()

	mainRun, err := openRun(cfg, basePol, nil, now, tmp, 0)
	if err != nil {
		return nil, err
	}
	mainRun.main = true
	runs := []*run{mainRun}
	defer func() {
		for _, r := range runs {
			r.close()
		}
	}()
	for i, p := range varPols {
		r, err := openRun(cfg, p, combos[i], now, tmp, i+1)
		if err != nil {
			return nil, err
		}
		runs = append(runs, r)
	}

	tl := &timeline{}
	prog.begin("replaying", int64(len(items)), false)
	var lastSweep time.Time
	for n, it := range items {
		if n&0xff == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		prog.add(1, 0)
		if it.Bad != "" {
			rep.Bad = append(rep.Bad, BadMessage{Location: it.Location(), Reason: it.Bad})
			continue
		}
		msg, err := readItem(it, basePol.BodyLimit, cfg.Mailbox)
		it.raw = nil // done with the bytes
		if err != nil {
			rep.Bad = append(rep.Bad, BadMessage{Location: it.Location(), Reason: err.Error()})
			continue
		}
		clock.Store(it.Time.UnixNano())
		if it.Time.Sub(lastSweep) >= sweepEvery {
			for _, r := range runs {
				r.store.Sweep()
			}
			lastSweep = it.Time
		}
		subject := classify.DecodeHeader(msg.Header.Get("Subject"))
		ref := MsgRef{Time: it.Time, Subject: subject, Location: it.Location()}
		if it.TimeFrom == "previous" {
			rep.Undated++
		}
		for _, r := range runs {
			d := r.eng.DecideFrom(ctx, engine.FromSMTPClient, msg)
			ref.Kind = string(d.Verdict.Kind)
			r.observe(&d, ref)
		}
		rep.Messages++
		if rep.Messages == 1 {
			rep.First = it.Time
		}
		rep.Last = it.Time
		tl.add(it.Time, ref.Kind)
	}
	prog.end()

	mainRun.report(rep, cfg.TopKeys)
	for _, r := range runs[1:] {
		rep.WhatIf = append(rep.WhatIf, r.variantReport())
	}
	rep.Kinds = tl.counts()
	rep.timeline = tl
	rep.Elapsed = Dur(cfg.Now().Sub(started))
	if s := cfg.Now().Sub(started).Seconds(); s > 0 {
		rep.PerSecond = float64(rep.Messages+len(rep.Bad)) / s
	}
	for _, r := range runs {
		if err := r.close(); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// sweepEvery is how much message time passes between two sweeps of the
// stores (dropping emptied windows and ended blocks).
const sweepEvery = 10 * time.Minute

func sizeOf(src string) int64 {
	var n int64
	_ = filepath.Walk(src, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// readItem reads a message as the daemon would have gathered it: an mbox
// entry is decoded by go-mbox (the From line dropped, ">From " unescaped),
// then the classifier's own reader keeps the header and body_limit bytes
// of body; the envelope comes from the header (setEnvelope).
func readItem(it *Item, bodyLimit int, mb Mailbox) (*classify.Message, error) {
	raw, err := it.bytes()
	if err != nil {
		return nil, err
	}
	var r io.Reader = bytes.NewReader(raw)
	if it.Mbox {
		if r, err = mbox.NewReader(r).NextMessage(); err != nil {
			return nil, fmt.Errorf("mbox: %w", err)
		}
	}
	msg, err := classify.ReadStoredMessage(r, bodyLimit)
	if err != nil {
		return nil, err
	}
	setEnvelope(msg, mb, it.MboxFrom)
	return msg, nil
}

// openRun opens a store and an engine for a policy.
func openRun(cfg Config, p *policy.Policy, cs []change, now func() time.Time, tmp string, n int) (*run, error) {
	r := &run{
		pol: p, changes: cs,
		rules: map[string]*RuleReport{}, open: map[string]*BlockReport{},
		passed: map[string]int{}, times: map[string][]int64{},
	}
	labels := make([]string, len(cs))
	for i, c := range cs {
		labels[i] = c.String()
	}
	r.label = strings.Join(labels, " ")
	opts := state.Options{Now: now, SweepInterval: -1, FlushInterval: -1, Logger: cfg.Log}
	r.path = cfg.StatePath
	if n > 0 || r.path == "" {
		r.path, r.temp = filepath.Join(tmp, fmt.Sprintf("state-%d.db", n)), true
	}
	if !r.temp {
		opts.FlushInterval = 0 // the caller's file: written as the daemon writes it
	}
	st, err := state.Open(r.path, opts)
	if err != nil {
		return nil, err
	}
	r.store = st
	r.eng = engine.New(p, st, cfg.Log)
	for i := range p.Rules {
		rl := &p.Rules[i]
		r.rules[rl.Name] = &RuleReport{
			Name: rl.Name, Kinds: rl.Kinds, Key: rl.Key, Direction: string(rl.Direction),
			Limit: rl.Limit, Window: Dur(rl.Window.D()), BlockFor: Dur(rl.BlockFor.D()),
			Action: string(rl.Action), Blocks: []*BlockReport{}, Top: []KeyPeak{},
		}
	}
	return r, nil
}

func (r *run) close() error {
	if r.store == nil {
		return nil
	}
	err := r.store.Close()
	r.store = nil
	return err
}

// mergeGap joins the messages a rule of limit 0 without block_for acts on
// (each on its own, with no block in the store) into one span while they
// come less than this apart.
const mergeGap = 15 * time.Minute

// observe records one decision: every count taken, the blocks they fell
// under, an ordinary message acted on.
func (r *run) observe(d *engine.Decision, ref MsgRef) {
	t := ref.Time
	for _, h := range d.Hits {
		rk := h.Rule + "\x00" + h.Key
		rr := r.rules[h.Rule]
		rule, ok := r.pol.Rule(h.Rule)
		if rr == nil || !ok {
			continue
		}
		rr.Hits++
		if r.main {
			r.times[rk] = append(r.times[rk], t.UnixMilli())
		}
		if !h.Blocked {
			rr.Passed++
			r.passed[rk]++
			continue
		}
		acting := h.Rule == d.Rule && h.Key == d.Key
		each := rule.Limit == 0 && rule.BlockFor.D() <= 0
		b := r.open[rk]
		fresh := b == nil || (acting && d.NewBlock)
		if b != nil && !fresh {
			if each {
				fresh = t.Sub(b.Last) > mergeGap
			} else {
				fresh = !t.Before(b.Until)
			}
		}
		if fresh {
			b = &BlockReport{
				Rule: h.Rule, Key: h.Key, Since: t, Start: ref, Action: rr.Action,
				PassedBefore: r.passed[rk], ByKind: map[string]int{}, Count: h.Count, Limit: h.Limit,
			}
			switch {
			case each:
				b.Until = t
			case acting && !d.Until.IsZero():
				b.Until = d.Until
			default:
				b.Until = t.Add(rule.BlockFor.D())
			}
			r.open[rk] = b
			r.blocks = append(r.blocks, b)
			rr.Blocks = append(rr.Blocks, b)
		}
		b.Messages++
		b.ByKind[ref.Kind]++
		b.Last = t
		if each {
			b.Until = t
		}
		if acting {
			b.Acted++
		}
		b.Lasted = Dur(b.Until.Sub(b.Since))
	}
	if d.Action == policy.ActionNone || d.Action == policy.ActionMonitor {
		return
	}
	if rr := r.rules[d.Rule]; rr != nil {
		rr.Acted++
	}
	if ref.Kind == string(classify.KindOrdinary) {
		r.touched = append(r.touched, Touched{
			Message: ref, Rule: d.Rule, Key: d.Key, Action: string(d.Action),
			Count: d.Count, Limit: d.Limit, Evidence: d.Verdict.Explain(),
		})
	}
}

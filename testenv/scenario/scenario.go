// Package scenario reproduces the three mail-loop incidents loopbreaker is
// for with real MTAs on loopback addresses, and accounts for every message.
//
// A run starts a World: an internal Postfix hub for corp.example (with
// loopbreaker as its milter, or without), an outside Postfix for
// outside.example on 127.0.0.2 that has a few real users and refuses the
// others, and Go mailstores that stand for the users' mailboxes. Mailbox
// agents written in Go act on delivered mail the way a mail server's
// rules and responders do, by submitting new messages over SMTP:
//
//   - forward-storm: alice's rule forwards every message, "FW: <subject>"
//     quoted inline, to nobody@outside.example, which does not exist. The
//     NDR comes back and is forwarded again.
//   - list-loop: staff@lists.corp.example (local(8) aliases) has
//     "owner-staff: staff", so the list is its own return path, and one
//     invalid outside member: each NDR goes to the list and out again.
//   - ping-pong: bob's out-of-office and the outside helpdesk's ticket
//     acknowledgement answer each other.
//   - fleet: list-loop over six hubs, each with its own loopbreaker, all
//     sharing one Redis Cluster; the outside spreads its mail over the
//     hubs at random. Mid-storm one hub's loopbreaker is killed (its
//     Postfix applies milter_default_action = tempfail) and so is the
//     Redis master that holds the second loop's count (fleet.go).
//
// Without loopbreaker the loop really runs until the run's loop budget
// (Options.LoopCap) is spent; with loopbreaker it stops at the policy's
// limit. Either way the run returns a Ledger that follows every copy of
// every message through the maillogs to its fate (delivered, quarantined,
// held, rejected with a reason, discarded, bounced, deferred...), and a
// per-second timeline.
package scenario

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv"
	"github.com/loopbreaker/loopbreaker/testenv/postfix"
)

// The scenarios.
const (
	ForwardStorm = "forward-storm"
	ListLoop     = "list-loop"
	PingPong     = "ping-pong"
	Fleet        = "fleet"
)

// Names lists the scenarios.
var Names = []string{ForwardStorm, ListLoop, PingPong, RedirectStorm, Fleet}

// The people of the scenarios.
const (
	Alice    = "alice@" + HubDomain // has the forwarding rule
	Bob      = "bob@" + HubDomain   // is out of office
	Dave     = "dave@" + HubDomain  // posts to the list
	List     = "staff@" + ListDomain
	Carol    = "carol@" + OutsideDomain
	Friend   = "friend@" + OutsideDomain
	Helpdesk = "helpdesk@" + OutsideDomain
	// Nobody does not exist at the outside: the mistyped address.
	Nobody = "nobody@" + OutsideDomain
)

// Options describe one run.
type Options struct {
	// Scenario is one of Names.
	Scenario string
	// Dir is a directory for the run's files. Required.
	Dir string
	// DaemonBin is the loopbreaker binary; empty runs without it.
	DaemonBin string
	// Policy is the policy file's content; empty uses the built-in policy.
	Policy string
	// BounceMilter sends the hub's own bounces through loopbreaker too.
	BounceMilter bool
	// Variant is redirect-storm's envelope; default RedirectResent.
	Variant RedirectVariant
	// Outside overrides how the outside refuses unknown users; the
	// default is RejectAtRCPT for forward-storm and ping-pong and
	// BounceAfterAccept for list-loop.
	Outside *OutsideMode
	// LoopCap is the loop budget: how many loop steps (forwards, NDRs,
	// auto-replies) the run allows before its agents stop feeding the
	// loop. Default 100.
	LoopCap int
	// MaxDuration bounds the run. Default 90s.
	MaxDuration time.Duration
	// Quiet is how long nothing may happen for the loop to count as
	// stopped. Default 1.5s.
	Quiet time.Duration
	// Progress, when set, is called about once a second with a status line.
	Progress func(Status)
	// Hubs is the fleet's size (Fleet only); default FleetHubs.
	Hubs int
	// AfterStop, when set, is called with the world still running once the
	// loop has stopped and the ledger is built (the demo shows the
	// release of held mail there).
	AfterStop func(w *World, r *Result) error
}

// Status is a snapshot of a running loop.
type Status struct {
	Elapsed    time.Duration
	BudgetUsed int
	Steps      map[string]int
	HubQueue   map[string]int
	Acted      int
	Blocks     []Decision
}

// Result is what a run saw.
type Result struct {
	Scenario        string
	Variant         RedirectVariant
	WithLoopbreaker bool
	BounceMilter    bool
	Outside         OutsideMode
	Start           time.Time
	// Stopped is when the loop was last active (its length).
	Stopped time.Duration
	// LoopCap and Spent are the budget and what the loop took of it.
	LoopCap int
	Spent   map[string]int
	// CapReached: the loop ran until the budget stopped it.
	CapReached bool
	// TimedOut: the loop was still active at MaxDuration.
	TimedOut bool
	Ledger   *Ledger
	// Decisions are loopbreaker's, Blocks those that started a block.
	Decisions []Decision
	Blocks    []Decision
	// Ordinary lists the ordinary messages sent during the storm.
	Ordinary []Submission
	Timeline []Second
	// HubConfigDir is the hub's configuration directory (postsuper -c).
	HubConfigDir string
	HubLog       string
	OutsideLog   string
	DaemonLog    string
	// Refused/Absorbed are the outside directory's counts.
	Refused, Absorbed int
	// Mailbox is the mailbox of the user whose rule or responder looped
	// (alice in forward-storm, bob in ping-pong), written under Dir/mailbox
	// for loopbreaker replay; nil for list-loop.
	Mailbox *Mailbox
	// Hubs names the organization's MTAs: "hub", or hub1..hubN in a fleet.
	Hubs []string
	// Faults are what the fleet scenario broke on the way, in order.
	Faults []Fault
}

// LoopKinds are the kinds of message a loop is made of: "forward" (the
// rule forwarding an ordinary message), "forwarded-ndr", "ndr" (made by a
// bounce daemon, and the list's copies of it), "auto-reply".
var LoopKinds = []string{"forward", "forwarded-ndr", "ndr", "auto-reply"}

// LoopMessages counts the copies of loop kinds the run made.
func (r *Result) LoopMessages() int {
	n := 0
	for _, k := range LoopKinds {
		n += r.Ledger.Made(k)
	}
	return n
}

// FirstBlock returns the first block loopbreaker started, if any.
func (r *Result) FirstBlock() (Decision, bool) {
	if len(r.Blocks) == 0 {
		return Decision{}, false
	}
	return r.Blocks[0], true
}

// Run runs one scenario.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.LoopCap == 0 {
		o.LoopCap = 100
	}
	if o.MaxDuration == 0 {
		o.MaxDuration = 90 * time.Second
	}
	if o.Quiet == 0 {
		o.Quiet = 1500 * time.Millisecond
	}
	mode := RejectAtRCPT
	if o.Scenario == ListLoop || o.Scenario == Fleet {
		mode = BounceAfterAccept
	}
	if o.Outside != nil {
		mode = *o.Outside
	}
	cfg := WorldConfig{
		Dir:          o.Dir,
		DaemonBin:    o.DaemonBin,
		Policy:       o.Policy,
		BounceMilter: o.BounceMilter,
		Outside:      mode,
		OutsideUsers: []string{"carol", "friend"},
		Budget:       NewBudget(o.LoopCap),
	}
	switch o.Scenario {
	case ForwardStorm:
	case ListLoop:
		cfg.Lists = map[string][]string{"staff": {Alice, Dave, Carol, Nobody}}
	case Fleet:
		cfg.Lists = map[string][]string{"staff": {Alice, Dave, Carol, Nobody}}
		cfg.Hubs = cmp.Or(o.Hubs, FleetHubs)
		cfg.RedisCluster = o.DaemonBin != ""
	case PingPong:
		cfg.OutsideUsers = append(cfg.OutsideUsers, "helpdesk")
	case RedirectStorm:
		if o.Variant == "" {
			o.Variant = RedirectResent
		}
		if o.Variant == RedirectNull {
			// Undeliverable null-sender mail goes to the postmaster,
			// who is alice.
			cfg.HubMainCF = map[string]string{"notify_classes": "2bounce, resource, software", "2bounce_notice_recipient": Alice}
		}
	default:
		return nil, fmt.Errorf("scenario: unknown scenario %q (want one of %s)", o.Scenario, strings.Join(Names, ", "))
	}
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	w, err := StartWorld(startCtx, cfg)
	cancel()
	if err != nil {
		return nil, err
	}
	defer w.Close()

	r := &Result{
		Scenario: o.Scenario, Variant: o.Variant, WithLoopbreaker: o.DaemonBin != "", BounceMilter: o.BounceMilter,
		Outside: mode, LoopCap: o.LoopCap, HubConfigDir: w.Hub.ConfigDir(),
	}
	for _, h := range w.Hubs {
		r.Hubs = append(r.Hubs, h.Name())
	}
	if o.Scenario == Fleet && w.Daemon != nil {
		w.faults = &fleetFaults{}
		w.faults.start(ctx, w)
		defer w.faults.wait() // on an early return too: no watcher left behind
	}
	var during, afterBlock func(context.Context) error
	var trigger func(context.Context) error
	switch o.Scenario {
	case RedirectStorm, ForwardStorm:
		if o.Scenario == RedirectStorm {
			w.AddRedirectRule(Alice, Nobody, "hub", o.Variant)
		} else {
			w.AddForwardRule(Alice, Nobody, "hub")
		}
		trigger = w.sender("outside", Carol, Alice, "Quarterly figures", "Hi Alice,\nthe figures are attached in spirit.\n")
		during = w.sender("hub", Alice, Friend, "Lunch on Friday?", "Shall we meet at noon?\n")
		afterBlock = w.sender("hub", Alice, Friend, "Re: Lunch on Friday?", "Noon it is.\n")
	case ListLoop, Fleet:
		trigger = w.sender("hub", Dave, List, "Team meeting moved to 3pm", "See you there.\n")
		during = w.sender("outside", Carol, Dave, "Invoice 4711", "Dave, the invoice is overdue.\n")
		afterBlock = w.sender("hub", Dave, List, "Minutes of the team meeting", "1. The list is broken.\n")
	case PingPong:
		w.AddOutOfOffice(Bob, "hub")
		w.AddHelpdesk(Helpdesk, "outside")
		trigger = w.sender("hub", Bob, Helpdesk, "Printer on the 3rd floor is jammed", "It says PC LOAD LETTER.\n")
		during = w.sender("outside", Carol, Bob, "Are you back next week?", "Let me know.\n")
		afterBlock = w.sender("outside", Carol, Bob, "Re: Are you back next week?", "Never mind, found out.\n")
	}

	r.Start = time.Now()
	if err := trigger(ctx); err != nil {
		return nil, fmt.Errorf("scenario %s: the first message: %w", o.Scenario, err)
	}
	if err := w.watch(ctx, o, r, during, afterBlock); err != nil {
		return nil, err
	}
	if w.faults != nil {
		// A failover still under way ends before the ledger is read.
		r.Faults = w.faults.wait()
	}
	w.Agents.Stop()
	if err := w.collect(r); err != nil {
		return nil, err
	}
	if user := loopUser(o.Scenario); user != "" {
		mb, err := WriteMailbox(filepath.Join(o.Dir, "mailbox"), user, w.HubStore.Messages(), w.Submissions())
		if err != nil {
			return nil, fmt.Errorf("scenario %s: writing %s's mailbox: %w", o.Scenario, user, err)
		}
		r.Mailbox = &mb
	}
	if o.AfterStop != nil {
		if err := o.AfterStop(w, r); err != nil {
			return r, err
		}
	}
	return r, w.Close()
}

// loopUser is the hub user whose mailbox rule or responder takes part in
// the scenario's loop.
func loopUser(scenario string) string {
	switch scenario {
	case ForwardStorm:
		return Alice
	case PingPong:
		return Bob
	}
	return ""
}

// sender is a step of a scenario that sends one message with w.send.
func (w *World) sender(via, from, to, subject, body string) func(context.Context) error {
	return func(ctx context.Context) error {
		return w.send(ctx, via, from, to, subject, body)
	}
}

// send submits an ordinary message from a person and records it.
func (w *World) send(ctx context.Context, via, from, to, subject, body string) error {
	domain := HubDomain
	if via == "outside" {
		domain = OutsideDomain
	}
	msg := testenv.Message([][2]string{
		{"From", from},
		{"To", to},
		{"Subject", subject},
		{"Date", time.Now().UTC().Format(time.RFC1123Z)},
		{"Message-ID", newMessageID("ord", domain)},
		{"MIME-Version", "1.0"},
		{"Content-Type", "text/plain; charset=utf-8"},
	}, body)
	return w.Submit(ctx, "test", via, "ordinary", from, []string{to}, msg)
}

// watch waits until the loop has been quiet for o.Quiet (or the budget
// ran out and everything settled, or MaxDuration passed), sending the
// ordinary messages on the way: one once the loop has taken 10 steps, one
// right after loopbreaker's first block.
func (w *World) watch(ctx context.Context, o Options, r *Result, during, afterBlock func(context.Context) error) error {
	budget := w.cfg.Budget
	deadline := time.Now().Add(o.MaxDuration)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last string
	lastChange := time.Now()
	lastProgress := time.Now()
	sentDuring, sentAfter := false, false
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		used := budget.Used()
		if !sentDuring && used >= 10 {
			sentDuring = true
			if err := during(ctx); err != nil {
				return fmt.Errorf("scenario %s: ordinary message during the storm: %w", o.Scenario, err)
			}
			r.Ordinary = append(r.Ordinary, w.lastSubmission())
		}
		blocked := false
		for _, d := range w.Daemons {
			blocked = blocked || strings.Contains(d.Log(), `"msg":"block started"`)
		}
		if sentDuring && !sentAfter && blocked {
			sentAfter = true
			if err := afterBlock(ctx); err != nil {
				return fmt.Errorf("scenario %s: ordinary message during the block: %w", o.Scenario, err)
			}
			r.Ordinary = append(r.Ordinary, w.lastSubmission())
		}
		if w.faults != nil {
			if err := w.faults.step(ctx, w); err != nil {
				return fmt.Errorf("scenario %s: %w", o.Scenario, err)
			}
		}
		hubQ := map[string]int{}
		hubNDRs := 0
		for _, h := range w.Hubs {
			q, _ := h.QueueCounts()
			for k, v := range q {
				hubQ[k] += v
			}
			hubNDRs += strings.Count(h.Log(), "non-delivery notification")
		}
		outQ, _ := w.Outside.QueueCounts()
		inFlight := hubQ["maildrop"] + hubQ["incoming"] + hubQ["active"] + outQ["maildrop"] + outQ["incoming"] + outQ["active"]
		if len(w.Hubs) > 1 {
			// In a fleet the outside's deferred mail is waiting for
			// another try at another hub (one whose milter is down
			// said 4xx): it is still on its way.
			inFlight += outQ["deferred"]
		}
		sig := fmt.Sprintf("%d/%d/%d/%d/%d/%d", used, len(w.Submissions()), w.HubStore.Count(), w.OutsideStore.Count(),
			hubNDRs, strings.Count(w.Outside.Log(), "non-delivery notification"))
		if sig != last {
			last, lastChange = sig, time.Now()
		}
		if o.Progress != nil && time.Since(lastProgress) >= time.Second {
			lastProgress = time.Now()
			st := Status{Elapsed: time.Since(r.Start), BudgetUsed: used, Steps: budget.Spent(), HubQueue: hubQ}
			if w.Daemon != nil {
				for _, d := range w.decisions() {
					if d.Acted() {
						st.Acted++
					}
					if d.Msg == "block started" {
						st.Blocks = append(st.Blocks, d)
					}
				}
			}
			o.Progress(st)
		}
		// Quiet: nothing new for o.Quiet with nothing in flight, or for
		// three times as long when a deferred message keeps retrying
		// (a bounce that a milter keeps refusing).
		quiet := time.Since(lastChange) >= o.Quiet && inFlight == 0 || time.Since(lastChange) >= 3*o.Quiet
		if quiet && !sentDuring {
			// The loop stopped (or never started) before it took 10
			// steps: send the ordinary message now and watch it arrive.
			sentDuring = true
			if err := during(ctx); err != nil {
				return fmt.Errorf("scenario %s: ordinary message: %w", o.Scenario, err)
			}
			r.Ordinary = append(r.Ordinary, w.lastSubmission())
			lastChange = time.Now()
			continue
		}
		if quiet {
			r.Stopped = lastChange.Sub(r.Start)
			return nil
		}
		if time.Now().After(deadline) {
			r.TimedOut = true
			r.Stopped = time.Since(r.Start)
			return nil
		}
	}
}

// collect fills r from the world once the loop has stopped.
func (w *World) collect(r *Result) error {
	now := time.Now()
	r.HubLog, r.OutsideLog = w.Hub.Log(), w.Outside.Log()
	if w.Daemon != nil {
		r.DaemonLog = w.daemonLog()
		r.Decisions = w.decisions()
		for _, d := range r.Decisions {
			if d.Msg == "block started" {
				r.Blocks = append(r.Blocks, d)
			}
		}
	}
	r.Spent = w.cfg.Budget.Spent()
	r.CapReached = w.cfg.Budget.Used() >= w.cfg.Budget.Limit()
	r.Refused, r.Absorbed = w.Directory.Counts()
	insts := map[string]*postfix.Instance{"outside": w.Outside}
	in := ledgerInput{
		logs:        map[string]*maillog{"outside": parseMaillog("outside", r.OutsideLog, now)},
		submissions: w.Submissions(),
		queued:      map[string]map[string]string{},
		sinks: map[int]sinkInfo{
			w.HubStore.Port():     {name: w.HubStore.Name(), msgs: w.HubStore.Messages()},
			w.OutsideStore.Port(): {name: w.OutsideStore.Name(), msgs: w.OutsideStore.Messages()},
		},
		ports:   map[int]string{portOf(w.Outside.SMTPAddr()): "outside"},
		outside: w.Directory,
	}
	hubs := &maillog{inst: "hubs", files: map[string]*queueFile{}}
	for _, h := range w.Hubs {
		name := h.Name()
		insts[name] = h
		ml := parseMaillog(name, h.Log(), now)
		in.logs[name] = ml
		in.ports[portOf(h.SMTPAddr())] = name
		hubs.order = append(hubs.order, ml.order...)
	}
	for name, inst := range insts {
		q, err := queueListing(inst)
		if err != nil {
			return err
		}
		in.queued[name] = q
	}
	r.Ledger = buildLedger(in)
	// Cross-check the queues with the harness's own counts.
	for _, name := range sortedKeys(insts) {
		counts, err := insts[name].QueueCounts()
		if err != nil {
			return err
		}
		held := 0
		for _, q := range in.queued[name] {
			if q == "hold" {
				held++
			}
		}
		if counts["hold"] != held {
			r.Ledger.Problems = append(r.Ledger.Problems, fmt.Sprintf("%s: hold queue has %d files, postqueue listed %d", name, counts["hold"], held))
		}
	}
	slices.SortStableFunc(hubs.order, func(a, b *queueFile) int { return a.created.Compare(b.created) })
	r.Timeline = buildTimeline(r, hubs)
	return nil
}

// decisions are every daemon's decisions so far, by time; each names its
// hub.
func (w *World) decisions() []Decision {
	var out []Decision
	for i, d := range w.Daemons {
		for _, dec := range parseDecisions(d.Log()) {
			dec.Hub = HubName(i, len(w.Daemons))
			out = append(out, dec)
		}
	}
	slices.SortStableFunc(out, func(a, b Decision) int { return a.Time.Compare(b.Time) })
	return out
}

// daemonLog is the daemon's log, or in a fleet every daemon's, each after
// a line naming its hub.
func (w *World) daemonLog() string {
	if len(w.Daemons) == 1 {
		return w.Daemon.Log()
	}
	var b strings.Builder
	for i, d := range w.Daemons {
		fmt.Fprintf(&b, "== loopbreaker of %s\n%s", HubName(i, len(w.Daemons)), d.Log())
	}
	return b.String()
}

func (w *World) lastSubmission() Submission {
	w.subMu.Lock()
	defer w.subMu.Unlock()
	return w.submissions[len(w.submissions)-1]
}

// queueListing returns the queue files left, queue id -> queue name.
func queueListing(inst interface {
	Postqueue(...string) (string, error)
}) (map[string]string, error) {
	out, err := inst.Postqueue("-j")
	if err != nil {
		return nil, err
	}
	q := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if line == "" {
			continue
		}
		var e struct {
			Queue string `json:"queue_name"`
			ID    string `json:"queue_id"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			return nil, errors.New("postqueue -j: " + err.Error())
		}
		q[e.ID] = e.Queue
	}
	return q, nil
}

func portOf(addr string) int {
	i := strings.LastIndex(addr, ":")
	var p int
	fmt.Sscanf(addr[i+1:], "%d", &p)
	return p
}

// OrdinaryFates returns, for each ordinary message sent during the storm,
// the fates of its copies.
func (r *Result) OrdinaryFates() map[string][]Copy {
	out := map[string][]Copy{}
	for _, s := range r.Ordinary {
		for _, c := range r.Ledger.Copies {
			if c.MessageID == s.MessageID {
				out[s.Subject] = append(out[s.Subject], c)
			}
		}
	}
	return out
}

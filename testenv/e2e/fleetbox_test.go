package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv/redisserver"
	"github.com/loopbreaker/loopbreaker/testenv/scenario"
)

// TestFleet: issue 17's fleet in one box. Six Postfix hubs, each with its
// own loopbreaker, share one Redis Cluster (three masters, three
// replicas); the outside spreads its mail over the hubs at random, so the
// list loop's NDRs reach every hub. On the way the fleet scenario kills
// hub6's loopbreaker at the first NDR decided (hub6's Postfix then applies
// milter_default_action = tempfail, and the outside tries again elsewhere)
// and, mid-way through the second loop, the Redis master holding that
// loop's count (its replica takes over while the daemons count in their
// state files). See testenv/scenario/fleet.go and docs/scaling.md,
// section 4.
//
// The first loop stops at the same total as on one MTA: 10 NDRs passed,
// the 11th refused. The second loop passes more, within FleetBound (the
// failover bound); every copy of every message is accounted for and no
// ordinary mail is refused or lost.
func TestFleet(t *testing.T) {
	requirePostfix(t)
	if err := redisserver.Redis.Available(); err != nil {
		t.Skipf("skipping: needs a real Redis Cluster: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	start := time.Now()
	r, err := scenario.Run(ctx, scenario.Options{
		Scenario:  scenario.Fleet,
		Dir:       t.TempDir(),
		DaemonBin: daemonBin,
		// The loop budget is a brake for a loopbreaker that fails; it must
		// not be what stops the second loop, whose bound is 356.
		LoopCap:     fleetLoopCap,
		MaxDuration: 2 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	r.Report(&b)
	t.Logf("run took %s\n%s", time.Since(start).Round(100*time.Millisecond), b.String())
	defer func() {
		if t.Failed() {
			t.Logf("outside maillog:\n%s\nloopbreaker logs:\n%s", tail(r.OutsideLog, 60), tail(r.DaemonLog, 120))
		}
	}()

	// Every message accounted for (the ledger, the fates of each kind,
	// the NDRs against the bounced copies) and the ordinary mail delivered.
	checkIncident(t, r)
	if r.CapReached {
		t.Errorf("the loop ran until the loop budget of %d stopped it", r.LoopCap)
	}
	if len(r.Hubs) != scenario.FleetHubs {
		t.Fatalf("%d hubs, want %d", len(r.Hubs), scenario.FleetHubs)
	}
	// Nothing is left waiting: what hub6 refused for now went through
	// another hub.
	for _, f := range []scenario.Fate{scenario.Deferred, scenario.TempFailed, scenario.Absorbed} {
		if n := r.Ledger.Count("", f); n != 0 {
			t.Errorf("%d copies %s, want none", n, f)
		}
	}

	// The faults happened, in order, and the cluster recovered.
	if len(r.Faults) != 3 {
		t.Fatalf("faults: %+v; want hub6's loopbreaker killed, a Redis master killed, the failover", r.Faults)
	}
	for i, want := range []string{"hub6's loopbreaker killed", "Redis master", "its replica serves slot"} {
		if !strings.Contains(r.Faults[i].What, want) {
			t.Errorf("fault %d: %q, want %q", i+1, r.Faults[i].What, want)
		}
	}
	// hub6's Postfix applied milter_default_action = tempfail: the outside
	// was told 4xx there and delivered through the next hub of its list.
	if !regexp.MustCompile(`host 127\.0\.0\.16\[127\.0\.0\.16\] said: 4\d\d `).MatchString(r.OutsideLog) {
		t.Errorf("the outside was never told 4xx by hub6")
	}
	for _, d := range r.Decisions {
		if d.Hub == "hub6" && d.Time.After(r.Faults[0].Time) {
			t.Errorf("hub6's loopbreaker decided after it was killed: %+v", d)
		}
	}
	// The daemons noticed the master's death and came back to Redis.
	if n := strings.Count(r.DaemonLog, `"msg":"Redis unreachable`); n == 0 {
		t.Errorf("no loopbreaker lost Redis: the master's death went unnoticed")
	}
	if strings.Count(r.DaemonLog, `"msg":"Redis is back`) < strings.Count(r.DaemonLog, `"msg":"Redis unreachable`) {
		t.Errorf("a loopbreaker that lost Redis did not get it back")
	}

	// The NDRs reached the hubs spread out.
	byHub := map[string]int{}
	for _, d := range r.Decisions {
		if d.Kind == "bounce" {
			byHub[d.Hub]++
		}
	}
	if len(byHub) < 3 {
		t.Errorf("NDRs decided by %d hubs (%v); the outside does not spread them", len(byHub), byHub)
	}

	// Loop 1 stops at the same total as on one MTA: the built-in
	// ndrs-per-original limit of 10, the 11th refused.
	first, ok := r.FirstBlock()
	if !ok {
		t.Fatal("loopbreaker started no block")
	}
	if first.Rule != "ndrs-per-original" || first.Count != first.Limit+1 || first.Limit != 10 {
		t.Errorf("first block: rule %s, count %d, limit %d; want ndrs-per-original at 11 of 10", first.Rule, first.Count, first.Limit)
	}
	loop1, loop2 := r.LoopNDRs()
	if loop1.Passed != 10 || loop1.Refused != 1 {
		t.Errorf("loop 1: %d NDRs passed, %d refused; want 10 and 1, as on one MTA", loop1.Passed, loop1.Refused)
	}
	// Loop 2 loses its shared count for a while: each daemon counts from
	// zero in its state file until the replica serves the slot. It must
	// still stop, within the failover bound of the largest limit that may
	// stop it (bounces-to-recipient, 50).
	bound := scenario.FleetBound(scenario.FleetHubs, 50)
	if loop2.Passed < 1 || loop2.Passed > bound || loop2.Refused < 1 {
		t.Errorf("loop 2: %d NDRs passed, %d refused; want 1 to %d passed and the loop refused", loop2.Passed, loop2.Refused, bound)
	}
	if got, want := r.Ledger.Count("ndr", scenario.Expanded), loop1.Passed+loop2.Passed; got != want {
		t.Errorf("the list expanded %d NDRs; loopbreaker passed %d", got, want)
	}
	for _, c := range r.Ledger.Copies {
		if c.Fate == scenario.Rejected && (c.Kind != "ndr" || !strings.Contains(c.Reason, "5.7.1 loopbreaker")) {
			t.Errorf("refused: %s %s to %s: %s", c.Kind, c.MessageID, c.To, c.Reason)
		}
	}
	var outages []string
	for _, m := range regexp.MustCompile(`"msg":"Redis is back[^"]*".*?"outage":"([^"]+)"`).FindAllStringSubmatch(r.DaemonLog, -1) {
		outages = append(outages, m[1])
	}
	t.Logf("loop 1: %d passed, %d refused; loop 2: %d passed, %d refused (bound %d); NDRs per hub %v; %s; the daemons counted alone for %s",
		loop1.Passed, loop1.Refused, loop2.Passed, loop2.Refused, bound, byHub, originalFound(r), strings.Join(outages, ", "))
}

// originalFound says in how many of loop 2's NDRs the classifier found the
// post they are all about: Postfix returns a message whole only up to
// bounce_size_limit (50,000 bytes), and each round nests the last NDR in
// the next, so after some rounds an NDR carries only the headers of the
// one before and the post is out of reach.
func originalFound(r *scenario.Result) string {
	post := ""
	for _, s := range r.Ordinary {
		if len(s.To) == 1 && strings.EqualFold(s.To[0], scenario.List) {
			post = s.MessageID
		}
	}
	first, _ := r.FirstBlock()
	found, n, last := 0, 0, 0
	for _, d := range r.Decisions {
		if d.Kind != "bounce" || !d.Time.After(first.Time) {
			continue
		}
		n++
		if d.OriginalMessageID == post {
			found++
			last = n
		}
	}
	return fmt.Sprintf("loop 2's post found in %d of its %d NDRs, the last at the %s", found, n, scenario.Ordinal(last))
}

// fleetLoopCap is TestFleet's loop budget: above both loops' bounds
// (11 + 356 + 1 NDRs), so that loopbreaker, not the budget, stops them.
const fleetLoopCap = 500

package scenario

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"
)

// reportResult builds by hand a forward-storm Result as Run collects it:
// alice's rule forwarded 50 messages (1 first forward and 49 forwarded
// NDRs), the hub made 50 NDRs, and alice sent one ordinary message during
// the storm. With loopbreaker, forward-storm blocked at the 26th.
func reportResult(with bool) *Result {
	start := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	r := &Result{
		Scenario:        ForwardStorm,
		WithLoopbreaker: with,
		Outside:         RejectAtRCPT,
		Start:           start,
		Stopped:         12 * time.Second,
		LoopCap:         100,
		Spent:           map[string]int{StepForward: 50, StepNDR: 50},
		Ledger:          &Ledger{NDRs: map[string]int{"hub": 50}},
		Ordinary: []Submission{{
			Time: start.Add(3 * time.Second), By: "test", Via: "hub", MessageID: "<ord.1@corp.example>",
			Kind: "ordinary", From: "alice@corp.example", To: []string{"friend@outside.example"}, Subject: "lunch on friday",
		}},
		Timeline: []Second{
			{T: 0, Hub: map[string]int{"forward": 1, "ndr": 1}},
			{T: 1, Hub: map[string]int{"forwarded-ndr": 24, "ndr": 24}},
			{T: 2, Hub: map[string]int{"forwarded-ndr": 25, "ndr": 25, "ordinary": 1}},
		},
	}
	add := func(kind, id, from, to string, fate Fate) {
		r.Ledger.Copies = append(r.Ledger.Copies, Copy{Kind: kind, MessageID: id, From: from, To: to, Fate: fate, Inst: "hub"})
	}
	add("ordinary", "<ord.1@corp.example>", "alice@corp.example", "friend@outside.example", Delivered)
	add("forward", "<fw.0@corp.example>", "alice@corp.example", "nobody@outside.example", Bounced)
	for i := 0; i < 49; i++ {
		fate := Bounced
		if with && i >= 24 {
			fate = Quarantined
		}
		add("forwarded-ndr", "", "alice@corp.example", "nobody@outside.example", fate)
	}
	if with {
		block := Decision{
			Time: start.Add(2 * time.Second), Msg: "block started", Kind: "forwarded-ndr", Sender: "alice@corp.example",
			Action: "redirect", Rule: "forward-storm", Key: "alice@corp.example", Count: 26, Limit: 25, Until: "2026-11-23T11:00:02Z",
		}
		r.Decisions = []Decision{{Msg: "pass", Kind: "forwarded-ndr"}, block}
		r.Blocks = []Decision{block}
		r.Timeline[2].Acted = 24
		r.Timeline[2].Blocks = []Decision{block}
	} else {
		r.CapReached = true
	}
	return r
}

func report(r *Result) string {
	var b bytes.Buffer
	r.Report(&b)
	return b.String()
}

// TestReportWordingForwards: the counts of forwarded messages are worded
// "messages the rule forwarded N" (every message the rule forwarded), not
// "forward N", which the tables use for the first message only.
func TestReportWordingForwards(t *testing.T) {
	if got := StepLabel(StepForward); got != "messages the rule forwarded" {
		t.Errorf("StepLabel(StepForward) = %q", got)
	}
	bare := regexp.MustCompile(`\bforward \d`)
	for _, with := range []bool{false, true} {
		s := reportResult(with).Summary()
		if !strings.Contains(s, "messages the rule forwarded 50, NDRs 50") {
			t.Errorf("with=%v: summary does not count 'messages the rule forwarded 50, NDRs 50':\n%s", with, s)
		}
		if bare.MatchString(s) {
			t.Errorf("with=%v: summary counts 'forward N':\n%s", with, s)
		}
		rep := report(reportResult(with))
		// The tables' kinds come with their legend.
		if !strings.Contains(rep, "forward = the first message, as the rule forwarded it") ||
			!strings.Contains(rep, "forwarded-ndr = an NDR the rule forwarded") {
			t.Errorf("with=%v: report lacks the kinds' legend:\n%s", with, rep)
		}
	}
}

// TestReportSaysLoopbreakerStoppedTheLoop: with a block, the summary says
// loopbreaker stopped the loop, when and by which rule; never that the
// loop stopped "by itself".
func TestReportSaysLoopbreakerStoppedTheLoop(t *testing.T) {
	r := reportResult(true)
	s := r.Summary()
	if !strings.HasPrefix(s, "loopbreaker stopped the loop (block at +2.0s, rule forward-storm) after 12.0s") {
		t.Errorf("summary with a block:\n%s", s)
	}
	if !strings.Contains(s, `block at +2.0s: rule forward-storm, key "alice@corp.example": the 26th forwarded-ndr message against a limit of 25 -> redirect`) {
		t.Errorf("summary lacks the block line:\n%s", s)
	}
	// Acting without a block is loopbreaker's stop too.
	r.Blocks = nil
	if s := r.Summary(); !strings.HasPrefix(s, "loopbreaker stopped the loop (it acted on the loop's messages without a block)") {
		t.Errorf("summary with actions and no block:\n%s", s)
	}
	for _, with := range []bool{false, true} {
		if rep := report(reportResult(with)); strings.Contains(rep, "by itself") {
			t.Errorf("with=%v: report says 'by itself':\n%s", with, rep)
		}
	}
}

// TestReportWithoutLoopbreakerSameHeader: the run without loopbreaker
// prints the same report: the "== " header naming the run, the summary,
// the tables and the ordinary mail sent during the storm.
func TestReportWithoutLoopbreakerSameHeader(t *testing.T) {
	without, with := report(reportResult(false)), report(reportResult(true))
	if !strings.HasPrefix(without, "== forward-storm without loopbreaker; outside refuses unknown users at RCPT TO\nthe loop ran until the run's loop budget stopped it after 12.0s") {
		t.Errorf("report without loopbreaker starts:\n%s", without)
	}
	if !strings.HasPrefix(with, "== forward-storm with loopbreaker (smtpd_milters only); outside refuses unknown users at RCPT TO\nloopbreaker stopped the loop") {
		t.Errorf("report with loopbreaker starts:\n%s", with)
	}
	for _, rep := range []string{without, with} {
		for _, want := range []string{
			"messages the hub took in, per second, by kind:",
			"every copy (one message to one recipient) and where it ended:",
			"ordinary mail sent during the storm:\n",
			`  +3.0s "lunch on friday" alice@corp.example -> friend@outside.example: friend@outside.example delivered` + "\n",
		} {
			if !strings.Contains(rep, want) {
				t.Errorf("report lacks %q:\n%s", want, rep)
			}
		}
	}
	if strings.Contains(without, "loopbreaker logged") || strings.Contains(without, "quarantine mailbox") {
		t.Errorf("report without loopbreaker talks of loopbreaker's actions:\n%s", without)
	}
	if !strings.Contains(with, "block: forward-storm redirect") {
		t.Errorf("timeline with loopbreaker lacks the block mark:\n%s", with)
	}
}

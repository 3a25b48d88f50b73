package engine

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/loopdetect/classify"
	"github.com/loopbreaker/loopbreaker/loopdetect/policy"
	"github.com/loopbreaker/loopbreaker/state"
)

// engineIn is newEngine with the mode set as serve -mode would set it (""
// leaves the policy's) and the quarantine mailbox, and its state store.
func engineIn(t *testing.T, mode policy.Mode, mailbox string) (*Engine, *state.Store) {
	t.Helper()
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"), state.Options{FlushInterval: -1, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	p := policy.Default()
	p.Apply(policy.Overrides{LocalDomains: []string{"corp.example"}, QuarantineMailbox: mailbox, Mode: mode})
	return New(p, st, nil), st
}

// stormSequence is a forward storm with ordinary mail and another
// sender's storm in between, and a bounce storm to a local list.
func stormSequence(t *testing.T) []*classify.Message {
	var ms []*classify.Message
	for i := range 40 {
		ms = append(ms, message(t, "alice@corp.example", "typo@outside.example", "FW: Mail delivery failed: returning message to sender"))
		if i%7 == 0 {
			ms = append(ms, message(t, "alice@corp.example", "typo@outside.example", "lunch?"))
			ms = append(ms, message(t, "bob@corp.example", "x@outside.example", "FW: failure notice"))
		}
	}
	for range 55 {
		ms = append(ms, bounce(t))
	}
	return ms
}

// TestMonitorModeWouldActOnly: the same sequence in enforce and in monitor
// mode gives the same counts, the same blocks (start, acted on) and the
// same settled action, fallbacks included; monitor mode does nothing
// (Action none) and says what it would have done (WouldAction, the audit
// trail's would_action).
func TestMonitorModeWouldActOnly(t *testing.T) {
	for _, mailbox := range []string{"quarantine@corp.example", ""} {
		enf, enfSt := engineIn(t, policy.ModeEnforce, mailbox)
		mon, monSt := engineIn(t, policy.ModeMonitor, mailbox)
		ctx := context.Background()
		would := 0
		for i, m := range stormSequence(t) {
			de, dm := enf.Decide(ctx, m), mon.Decide(ctx, m)
			if de.Mode != policy.ModeEnforce || dm.Mode != policy.ModeMonitor {
				t.Fatalf("modes %q %q", de.Mode, dm.Mode)
			}
			if dm.Action != policy.ActionNone {
				t.Fatalf("message %d: monitor mode acts: %q", i, dm.Action)
			}
			if de.WouldAction != policy.ActionNone {
				t.Fatalf("message %d: enforce mode has a would-action %q", i, de.WouldAction)
			}
			if dm.WouldAction != de.Action || dm.Settled() != de.Settled() || dm.RuleAction != de.RuleAction || dm.Fallback != de.Fallback ||
				dm.Rule != de.Rule || dm.Key != de.Key || dm.Count != de.Count || dm.NewBlock != de.NewBlock || dm.Acted != de.Acted ||
				dm.ReplyCode != de.ReplyCode || dm.Reply != de.Reply || dm.QuarantineMailbox != de.QuarantineMailbox ||
				!slices.Equal(dm.Hits, de.Hits) {
				t.Fatalf("message %d (mailbox %q):\nenforce %+v\nmonitor %+v", i, mailbox, de, dm)
			}
			if dm.WouldAction != policy.ActionNone {
				would++
			}
		}
		// 15 forwarded NDRs over 25, 5 bounces over 50.
		if would != 20 {
			t.Fatalf("mailbox %q: %d would-actions, want 20", mailbox, would)
		}
		want := policy.ActionRedirect
		if mailbox == "" {
			want = policy.ActionQuarantine // the fallback, as enforce takes it
		}
		if d := mon.Decide(ctx, stormSequence(t)[0]); d.WouldAction != want || d.Action != policy.ActionNone {
			t.Fatalf("mailbox %q: would %q, want %q", mailbox, d.WouldAction, want)
		}
		enf.Decide(ctx, stormSequence(t)[0])
		be, bm := blocksOf(enfSt), blocksOf(monSt)
		if len(bm) != 2 || !slices.Equal(be, bm) {
			t.Fatalf("blocks:\nenforce %v\nmonitor %v", be, bm)
		}
		if ce, cm := enfSt.Count("forward-storm", "alice@corp.example"), monSt.Count("forward-storm", "alice@corp.example"); ce != cm || cm != 26 {
			t.Fatalf("counts %d %d, want 26 (a block holds the count at limit+1)", ce, cm)
		}
		ee, em := enfSt.Events(0), monSt.Events(0)
		if len(ee) != len(em) || len(em) != 21 {
			t.Fatalf("%d and %d events, want 21", len(ee), len(em))
		}
		for i := range em {
			if em[i].Action != "none" || em[i].WouldAction != ee[i].Action || ee[i].WouldAction != "" ||
				em[i].NewBlock != ee[i].NewBlock || em[i].Acted != ee[i].Acted || em[i].Rule != ee[i].Rule {
				t.Fatalf("event %d:\nenforce %+v\nmonitor %+v", i, ee[i], em[i])
			}
		}
	}
}

type blockView struct {
	rule, key    string
	count, limit int
}

func blocksOf(st *state.Store) []blockView {
	var out []blockView
	for _, b := range st.Blocks() {
		out = append(out, blockView{b.Rule, b.Key, b.Count, b.Limit})
	}
	slices.SortFunc(out, func(a, b blockView) int {
		if a.rule < b.rule {
			return -1
		}
		if a.rule > b.rule {
			return 1
		}
		return 0
	})
	return out
}

// TestMonitorModeNeverRefusesAtRCPT: a bounce to a recipient blocked by a
// rejecting rule is refused at RCPT TO in enforce mode; in monitor mode it
// is neither refused nor counted there (end of message counts it).
func TestMonitorModeNeverRefusesAtRCPT(t *testing.T) {
	e, p := newEngineWith(t, bounceRejectPolicy)
	ctx := context.Background()
	for range 2 {
		e.Decide(ctx, bounce(t))
	}
	env := classify.Envelope{}
	if d := e.CheckRecipient(ctx, FromSMTPClient, env, "list@corp.example"); d.Action != policy.ActionReject {
		t.Fatalf("enforce at RCPT: %+v", d)
	}
	before := e.store.(*state.Store).Count("bounces-to-recipient", "list@corp.example")
	pm := *p
	pm.Apply(policy.Overrides{Mode: policy.ModeMonitor})
	e.SetPolicy(&pm)
	if d := e.CheckRecipient(ctx, FromSMTPClient, env, "list@corp.example"); d.Action != policy.ActionNone || d.WouldAction != policy.ActionNone || d.Mode != policy.ModeMonitor {
		t.Fatalf("monitor at RCPT: %+v", d)
	}
	if after := e.store.(*state.Store).Count("bounces-to-recipient", "list@corp.example"); after != before {
		t.Fatalf("monitor mode counted at RCPT: %d -> %d", before, after)
	}
	d := e.Decide(ctx, bounce(t))
	if d.Action != policy.ActionNone || d.WouldAction != policy.ActionReject || d.ReplyCode != 550 {
		t.Fatalf("monitor at end of message: %+v", d)
	}
}

// TestModeSwitchKeepsCountsAndBlocks: a reload from monitor to enforce
// (the policy swapped) keeps the counts and the block a monitor-mode storm
// started; the next storm message is acted on, and back in monitor mode
// the one after only would be.
func TestModeSwitchKeepsCountsAndBlocks(t *testing.T) {
	e, st := engineIn(t, policy.ModeMonitor, "quarantine@corp.example")
	ctx := context.Background()
	storm := func() Decision {
		return e.Decide(ctx, message(t, "alice@corp.example", "typo@outside.example", "FW: Undeliverable: x"))
	}
	for range 26 {
		storm()
	}
	blocked, ok := st.Blocked("forward-storm", "alice@corp.example")
	if !ok || blocked.Count != 1 {
		t.Fatalf("block after 26 in monitor mode: %+v %v", blocked, ok)
	}
	reload := func(mode policy.Mode) {
		p := policy.Default()
		p.Mode = mode
		p.Apply(policy.Overrides{LocalDomains: []string{"corp.example"}, QuarantineMailbox: "quarantine@corp.example"})
		e.SetPolicy(p)
	}
	reload(policy.ModeEnforce)
	if d := storm(); d.Action != policy.ActionRedirect || d.NewBlock || d.Count != 26 || d.Acted != 2 {
		t.Fatalf("after the switch to enforce: %+v", d)
	}
	reload(policy.ModeMonitor)
	if d := storm(); d.Action != policy.ActionNone || d.WouldAction != policy.ActionRedirect || d.Count != 26 || d.Acted != 3 {
		t.Fatalf("back in monitor mode: %+v", d)
	}
	if b, _ := st.Blocked("forward-storm", "alice@corp.example"); !b.Since.Equal(blocked.Since) || time.Until(b.Until) < 59*time.Minute {
		t.Fatalf("block changed: %+v, was %+v", b, blocked)
	}
}

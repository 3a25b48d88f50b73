package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/loopdetect/policy"
)

// monitorPolicy writes the built-in policy (forward-storm: 25 in 15
// minutes, redirect) with its mode set to mode.
func monitorPolicy(t *testing.T, path, mode string) {
	t.Helper()
	src := policy.DefaultText()
	if !strings.Contains(src, `mode = "enforce"`) {
		t.Fatal(`the built-in policy has no mode = "enforce" line`)
	}
	src = strings.Replace(src, `mode = "enforce"`, `mode = "`+mode+`"`, 1)
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
}

// blockView and eventView are what the admin CLI's -json prints.
type blockView struct {
	Rule, Key   string
	Count       int
	Action      string `json:"action"`
	WouldAction string `json:"would_action"`
}

type eventView struct {
	Rule, Key   string
	Action      string `json:"action"`
	WouldAction string `json:"would_action"`
	Count       int    `json:"count"`
	NewBlock    bool   `json:"new_block"`
	QueueID     string `json:"queue_id"`
}

// TestMonitorModeStormThenEnforce: in monitor mode (mode = "monitor" in
// the policy file) a forward storm of 40 is delivered whole through
// Postfix; the block starts at the 26th exactly as in enforce mode, and
// the log, loopbreaker blocks and loopbreaker events say "would redirect"
// from the 26th on. The policy file rewritten with mode = "enforce" and
// SIGHUP: the block and its count are kept, and the next storm message is
// redirected to the quarantine mailbox.
func TestMonitorModeStormThenEnforce(t *testing.T) {
	requirePostfix(t)
	pol := filepath.Join(t.TempDir(), "policy.toml")
	monitorPolicy(t, pol, "monitor")
	h := startHub(t, "-policy", pol)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const alice, typo = "alice@corp.example", "nobody@outside.example"

	if out, err := lb(t, h, "status"); err != nil || !regexp.MustCompile(`(?m)^mode +monitor: `).MatchString(out) {
		t.Fatalf("status in monitor mode: %v\n%s", err, out)
	}
	for i := range 40 {
		send(t, ctx, h, alice, []string{typo}, forwardedNDR(alice, typo, i))
	}
	h.settle(t, ctx, 40, 0)
	if n := len(bySubject(h.outside.Messages(), alice, stormSubj)); n != 40 || h.mailstore.Count() != 0 {
		t.Fatalf("monitor mode: %d forwarded NDRs delivered outside, %d at the mailstore; want all 40 delivered, none redirected", n, h.mailstore.Count())
	}
	for _, m := range h.outside.Messages() {
		if m.Header.Get("X-Loopbreaker") != "" || len(m.To) != 1 || m.To[0] != typo {
			t.Fatalf("monitor mode touched a message: to %v, X-Loopbreaker %q", m.To, m.Header.Get("X-Loopbreaker"))
		}
	}

	// The decision log: the block started at the 26th, nothing done.
	started := regexp.MustCompile(`msg="block started \(monitor mode: nothing done\)" queue_id=[0-9A-F]{6,} .*mode=monitor action=none would_action=redirect rule=forward-storm key=alice@corp.example count=26 limit=25`)
	if !started.MatchString(h.daemon.Log()) {
		t.Errorf("the log does not say the block would have started at the 26th:\n%s", h.daemon.Log())
	}
	if n := strings.Count(h.daemon.Log(), `msg="would have acted (monitor mode: nothing done)"`); n != 14 {
		t.Errorf("%d 'would have acted' lines, want 14 (27th to 40th)", n)
	}

	// The blocks: in force, counted as in enforce mode, would redirect.
	var bs []blockView
	out, err := lb(t, h, "blocks", "-json")
	if err != nil || json.Unmarshal([]byte(out), &bs) != nil {
		t.Fatalf("blocks -json: %v\n%s", err, out)
	}
	if len(bs) != 1 || bs[0].Rule != "forward-storm" || bs[0].Key != alice || bs[0].Count != 15 || bs[0].Action != "none" || bs[0].WouldAction != "redirect" {
		t.Fatalf("blocks in monitor mode: %+v", bs)
	}
	if out, err := lb(t, h, "blocks"); err != nil || !regexp.MustCompile(`forward-storm +alice@corp.example +would redirect +`).MatchString(out) {
		t.Fatalf("blocks table: %v\n%s", err, out)
	}
	// The audit trail: 15 would-redirects, the first the 26th and the block's start.
	var evs []eventView
	out, err = lb(t, h, "events", "-json")
	if err != nil || json.Unmarshal([]byte(out), &evs) != nil {
		t.Fatalf("events -json: %v\n%s", err, out)
	}
	if len(evs) != 15 || !evs[0].NewBlock || evs[0].Count != 26 || evs[0].QueueID == "" {
		t.Fatalf("events in monitor mode: %+v", evs)
	}
	for _, e := range evs {
		if e.Action != "none" || e.WouldAction != "redirect" || e.Rule != "forward-storm" {
			t.Fatalf("event %+v, want action none, would_action redirect", e)
		}
	}
	if out, err := lb(t, h, "events"); err != nil || strings.Count(out, "would redirect") != 15 {
		t.Fatalf("events table: %v\n%s", err, out)
	}

	// Enforce, by the policy file and SIGHUP: counts and the block stay.
	monitorPolicy(t, pol, "enforce")
	if err := h.daemon.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if err := h.daemon.WaitLog(ctx, `msg="mode switched; counts and blocks are kept" from=monitor to=enforce`, 1); err != nil {
		t.Fatalf("%v\n%s", err, h.daemon.Log())
	}
	if out, err := lb(t, h, "status"); err != nil || !regexp.MustCompile(`(?m)^mode +enforce$`).MatchString(out) {
		t.Fatalf("status after the switch: %v\n%s", err, out)
	}
	send(t, ctx, h, alice, []string{typo}, forwardedNDR(alice, typo, 40))
	h.settle(t, ctx, 0, 1)
	if n := h.outside.Count(); n != 40 {
		t.Errorf("outside has %d messages after the switch, want still 40", n)
	}
	if m := h.mailstore.Messages()[0]; m.From != alice || len(m.To) != 1 || m.To[0] != quarantine || !strings.Contains(m.Header.Get("X-Loopbreaker"), "count=26") {
		t.Errorf("redirected message: from %s to %v, X-Loopbreaker %q", m.From, m.To, m.Header.Get("X-Loopbreaker"))
	}
	out, err = lb(t, h, "blocks", "-json")
	bs = nil
	if err != nil || json.Unmarshal([]byte(out), &bs) != nil {
		t.Fatalf("blocks -json: %v\n%s", err, out)
	}
	if len(bs) != 1 || bs[0].Count != 16 || bs[0].Action != "redirect" || bs[0].WouldAction != "" {
		t.Fatalf("blocks in enforce mode: %+v", bs)
	}
	evs = nil
	out, err = lb(t, h, "events", "-json", "-n", "1")
	if err != nil || json.Unmarshal([]byte(out), &evs) != nil || len(evs) != 1 || evs[0].Action != "redirect" || evs[0].WouldAction != "" || evs[0].NewBlock {
		t.Fatalf("last event after the switch: %v %+v\n%s", err, evs, out)
	}
}

package notify

import (
	"strings"
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/loopdetect/engine"
	"github.com/loopbreaker/loopbreaker/loopdetect/policy"
	"github.com/loopbreaker/loopbreaker/state"
)

// TestMonitorModeMail: a block monitor mode started is told as one that
// would have acted, how, and that nothing was done.
func TestMonitorModeMail(t *testing.T) {
	p := policy.Default()
	p.AdminAddress = "admin@corp.example"
	n := (&Notifier{Policy: func() *policy.Policy { return p }}).Start()
	n.Decided(&engine.Decision{Mode: policy.ModeMonitor, WouldAction: policy.ActionRedirect, Rule: "forward-storm",
		Key: "alice@corp.example", NewBlock: true, Limit: 25, Window: 15 * time.Minute, Until: time.Now().Add(time.Hour)}, 0)
	ntc := <-n.queue
	if !ntc.Monitor || ntc.Action != "redirect" {
		t.Fatalf("notice %+v", ntc)
	}
	m := blockMail(ntc, state.Block{Count: 3, Samples: []string{"FW: Undeliverable"}}, p, "")
	if m.subject != "[loopbreaker] monitor mode: would redirect alice@corp.example (rule forward-storm); nothing done" {
		t.Errorf("subject %q", m.subject)
	}
	for _, want := range []string{"monitor mode: it would have started a block", "Nothing was done to any message",
		"Would:     redirect every further such message", "Would have acted on: 3 message(s)", "loopbreaker release alice@corp.example -rule forward-storm"} {
		if !strings.Contains(m.body, want) {
			t.Errorf("body lacks %q:\n%s", want, m.body)
		}
	}
	if s := summary([]Notice{ntc}, p, ""); !strings.Contains(s.body, "monitor mode: would redirect, nothing done,") {
		t.Errorf("summary:\n%s", s.body)
	}
}

package milter

import (
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/loopbreaker/loopbreaker/loopdetect/engine"
	"github.com/loopbreaker/loopbreaker/testenv"
)

func startWithPolicy(t *testing.T, src string) string {
	t.Helper()
	addr, _ := serveTB(t, parsePolicy(t, src), io.Discard, Options{}, nil)
	return addr
}

// fwPolicy is a policy with one rule, "fw", on the forwarded NDRs a local
// sender sends out, with action; limit holds the rule's lines between key
// and action (limit, window, block_for).
func fwPolicy(action, limit string) string {
	return `local_domains = ["corp.example"]
quarantine_mailbox = "q@corp.example"
[[rule]]
name = "fw"
kinds = ["forwarded-ndr"]
direction = "outbound"
key = "sender"
` + limit + `action = "` + action + `"
`
}

// fwLimit1 is fwPolicy's limit of one message an hour, blocking for an hour.
const fwLimit1 = `limit = 1
window = "1h"
block_for = "1h"
`

// fwHeader is the header of a forwarded NDR that fwPolicy's rule counts.
var fwHeader = [][2]string{{"Subject", "FW: Undeliverable: report"}}

// sendFW sends a forwarded NDR from alice@corp.example out, as smtpd does.
func sendFW(t *testing.T, addr string) result {
	t.Helper()
	return send(t, addr, "alice@corp.example", []string{"x@outside.example"}, fwHeader, "b\r\n")
}

// TestEveryActionOverTheProtocol checks what each action looks like to the
// MTA on the message over the limit (limit 1: the second message).
func TestEveryActionOverTheProtocol(t *testing.T) {
	tests := []struct {
		action string
		check  func(t *testing.T, r result)
	}{
		{"reject", func(t *testing.T, r result) {
			if r.act.Type != gomilter.ActionRejectWithCode || r.act.SMTPCode != 550 || !strings.Contains(r.act.SMTPReply, "5.7.1 loopbreaker") {
				t.Fatalf("%+v", r.act)
			}
		}},
		{"tempfail", func(t *testing.T, r result) {
			if r.act.Type != gomilter.ActionRejectWithCode || r.act.SMTPCode != 451 || !strings.Contains(r.act.SMTPReply, "4.7.1 loopbreaker") {
				t.Fatalf("%+v", r.act)
			}
		}},
		{"discard", func(t *testing.T, r result) {
			if r.act.Type != gomilter.ActionDiscard {
				t.Fatalf("%+v", r.act)
			}
		}},
		{"quarantine", func(t *testing.T, r result) {
			if r.act.Type != gomilter.ActionAccept || !hasMod(r.mods, gomilter.ActionQuarantine) {
				t.Fatalf("%+v %+v", r.act, r.mods)
			}
		}},
		{"redirect", func(t *testing.T, r result) {
			if r.act.Type != gomilter.ActionAccept || !hasMod(r.mods, gomilter.ActionAddRcpt) || !hasMod(r.mods, gomilter.ActionDelRcpt) {
				t.Fatalf("%+v %+v", r.act, r.mods)
			}
		}},
		{"tag", func(t *testing.T, r result) {
			if r.act.Type != gomilter.ActionAccept || len(r.mods) != 1 || r.mods[0].HeaderName != HeaderInfo {
				t.Fatalf("%+v %+v", r.act, r.mods)
			}
		}},
		{"monitor", func(t *testing.T, r result) {
			if r.act.Type != gomilter.ActionAccept || len(r.mods) != 0 {
				t.Fatalf("%+v %+v", r.act, r.mods)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.action, func(t *testing.T) {
			addr := startWithPolicy(t, fwPolicy(tt.action, fwLimit1))
			first := sendFW(t, addr)
			if first.act.Type != gomilter.ActionAccept || len(first.mods) != 0 {
				t.Fatalf("first message (within the limit): %+v %+v", first.act, first.mods)
			}
			tt.check(t, sendFW(t, addr))
			// Ordinary mail is never touched, whatever the action.
			r := send(t, addr, "alice@corp.example", []string{"x@outside.example"}, [][2]string{{"Subject", "hello"}}, "b\r\n")
			if r.act.Type != gomilter.ActionAccept || len(r.mods) != 0 {
				t.Fatalf("ordinary mail: %+v %+v", r.act, r.mods)
			}
		})
	}
}

func hasMod(mods []gomilter.ModifyAction, typ gomilter.ModifyActionType) bool {
	for _, m := range mods {
		if m.Type == typ {
			return true
		}
	}
	return false
}

// bounceRejectPolicy is a policy with one rule that rejects bounces to a
// recipient over limit in 10 minutes, blocking for an hour.
func bounceRejectPolicy(limit string) string {
	return `local_domains = ["corp.example"]
[[rule]]
name = "bounces-to-recipient"
kinds = ["bounce"]
direction = "inbound"
key = "recipient"
limit = ` + limit + `
window = "10m"
action = "reject"
block_for = "1h"
`
}

// bounceHeader is the header of a Postfix bounce that bounceRejectPolicy's
// rule counts.
var bounceHeader = [][2]string{{"From", "MAILER-DAEMON@corp.example"}, {"Subject", "Undelivered Mail Returned to Sender"}}

// TestNonSMTPBounceIsHeldNotRefused: Postfix's own bounces come through
// non_smtpd_milters without {client_addr}. Postfix cannot refuse their
// recipients ("can't reject recipient in non-smtpd"), and a refused bounce
// leaves its original deferred, so a reject rule holds them instead, at
// end of message, while an SMTP session is still refused at RCPT.
func TestNonSMTPBounceIsHeldNotRefused(t *testing.T) {
	addr := startWithPolicy(t, bounceRejectPolicy("2"))
	rcpt := []string{"list@corp.example"}
	nonSMTP := gomilter.NewMacroBag()
	nonSMTP.Set(gomilter.MacroClientAddr, "127.0.0.1")
	nonSMTP.Set(macroClientPort, "0")
	for i := 0; i < 2; i++ {
		if r := sendMacros(t, addr, nonSMTP, "", rcpt, bounceHeader, "b\r\n"); r.act.Type != gomilter.ActionAccept || len(r.mods) != 0 {
			t.Fatalf("bounce %d within the limit: %+v %+v", i+1, r.act, r.mods)
		}
	}
	for i := 2; i < 4; i++ {
		r := sendMacros(t, addr, nonSMTP, "", rcpt, bounceHeader, "b\r\n")
		if r.act.Type != gomilter.ActionAccept || !hasMod(r.mods, gomilter.ActionQuarantine) {
			t.Fatalf("non-SMTP bounce %d over the limit: %+v %+v, want held", i+1, r.act, r.mods)
		}
	}
	// The same block refuses an SMTP client's bounce at RCPT TO.
	c := gomilter.NewClient("tcp", addr, gomilter.WithActions(Actions|gomilter.OptSetMacros))
	smtpd := gomilter.NewMacroBag()
	smtpd.Set(gomilter.MacroClientAddr, "192.0.2.1")
	smtpd.Set(macroClientPort, "49152")
	s, err := c.Session(smtpd)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Conn("mx.example", gomilter.FamilyInet, 25, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Helo("mx.example"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mail("", ""); err != nil {
		t.Fatal(err)
	}
	a, err := s.Rcpt(rcpt[0], "")
	if err != nil {
		t.Fatal(err)
	}
	if a.Type != gomilter.ActionRejectWithCode || a.SMTPCode != 550 {
		t.Fatalf("SMTP bounce at RCPT: %+v, want 550", a)
	}
}

// TestBodyLimitOfThePolicy: the milter gathers the policy's body_limit of
// the body, not the classifier's default, so an NDR whose report text
// starts after 256 KiB is still recognized with body_limit = 1 MiB.
func TestBodyLimitOfThePolicy(t *testing.T) {
	addr := startWithPolicy(t, testenv.BodyLimitPolicy)
	body := testenv.LateReportNDR()
	r := send(t, addr, "", []string{"list@corp.example"}, [][2]string{{"From", "someone@outside.example"}, {"Subject", "Your message"}}, body)
	if r.act.Type != gomilter.ActionAccept || len(r.mods) != 1 || r.mods[0].HeaderName != HeaderInfo || !strings.Contains(r.mods[0].HeaderValue, "kind=bounce") {
		t.Fatalf("%+v %+v, want the bounce tagged", r.act, r.mods)
	}
}

// TestRefusedModificationFallsBack: when the MTA refuses what an action
// needs (here: it did not offer the action), the milter falls back as
// onRefusal says and counts the failure.
func TestRefusedModificationFallsBack(t *testing.T) {
	tests := []struct {
		action  string
		offered gomilter.OptAction
		check   func(t *testing.T, r result)
	}{
		{"redirect", gomilter.OptAddHeader | gomilter.OptQuarantine, func(t *testing.T, r result) {
			if r.act.Type != gomilter.ActionAccept || !hasMod(r.mods, gomilter.ActionQuarantine) || hasMod(r.mods, gomilter.ActionDelRcpt) {
				t.Fatalf("%+v %+v, want held", r.act, r.mods)
			}
		}},
		{"quarantine", gomilter.OptAddHeader, func(t *testing.T, r result) {
			if r.act.Type != gomilter.ActionTempFail {
				t.Fatalf("%+v %+v, want tempfail", r.act, r.mods)
			}
		}},
		{"tag", 0, func(t *testing.T, r result) {
			if r.act.Type != gomilter.ActionAccept || len(r.mods) != 0 {
				t.Fatalf("%+v %+v, want accepted untagged", r.act, r.mods)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.action, func(t *testing.T) {
			var failures countFailures
			addr, _ := serveTB(t, parsePolicy(t, fwPolicy(tt.action, "limit = 0\n")), io.Discard, Options{}, func(eng *engine.Engine) { eng.Observe(&failures) })
			macros := gomilter.NewMacroBag()
			macros.Set(gomilter.MacroClientAddr, "192.0.2.1")
			r := sendActions(t, addr, tt.offered|gomilter.OptSetMacros, macros, "alice@corp.example", []string{"x@outside.example"}, fwHeader, "b\r\n")
			tt.check(t, r)
			if n := failures.milter.Load(); n != 1 {
				t.Fatalf("%d milter failures counted, want 1", n)
			}
		})
	}
}

// countFailures is an engine.Observer that counts Failed("milter").
type countFailures struct{ milter atomic.Int64 }

func (*countFailures) Decided(*engine.Decision, time.Duration) {}
func (*countFailures) Counted(time.Duration, error)            {}
func (c *countFailures) Failed(where string) {
	if where == "milter" {
		c.milter.Add(1)
	}
}

package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv"
	"github.com/loopbreaker/loopbreaker/testenv/postfix"
	"github.com/loopbreaker/loopbreaker/testenv/smtpsink"
)

const (
	quarantine = "quarantine@corp.example"
	stormSubj  = "FW: Mail delivery failed: returning message to sender"
)

// hub is a Postfix for corp.example with loopbreaker as its smtpd milter:
// corp.example goes to the mailstore sink, everything else to the outside
// sink.
type hub struct {
	pf        *postfix.Instance
	daemon    *testenv.Daemon
	outside   *smtpsink.Sink
	mailstore *smtpsink.Sink
}

// settle waits until the outside sink holds outside messages or more and
// the quarantine mailbox quarantined or more (0: none waited for), then
// until Postfix's queue is empty: every message sent so far is delivered,
// held or refused. It fails the test with the counts and the daemon's log.
func (h *hub) settle(t *testing.T, ctx context.Context, outside, quarantined int) {
	t.Helper()
	for _, w := range []struct {
		name string
		sink *smtpsink.Sink
		n    int
	}{{"outside", h.outside, outside}, {"quarantine", h.mailstore, quarantined}} {
		if err := w.sink.WaitCount(ctx, w.n); err != nil {
			t.Fatalf("%s got %d messages, want %d: %v\n%s", w.name, w.sink.Count(), w.n, err, h.daemon.Log())
		}
	}
	if err := h.pf.WaitQueueEmpty(ctx); err != nil {
		t.Fatal(err)
	}
}

func startHub(t *testing.T, daemonArgs ...string) *hub {
	t.Helper()
	h := &hub{
		outside:   smtpsink.MustStart(t, "outside"),
		mailstore: smtpsink.MustStart(t, "mailstore"),
	}
	args := append([]string{"-local-domains", "corp.example", "-quarantine-mailbox", quarantine, "-log-level", "debug"}, daemonArgs...)
	h.daemon = testenv.MustStartDaemon(t, daemonBin, args...)
	h.pf = postfix.MustStart(t, postfix.Config{
		Name:       "hub",
		MyHostname: "hub.corp.example",
		MyDomain:   "corp.example",
		Transports: map[string]string{"corp.example": "smtp:" + h.mailstore.Nexthop()},
		RelayHost:  h.outside.Nexthop(),
		Milters:    h.daemon.PostfixSpec,
		// A milter that does not answer must show up as a failure here,
		// not as mail passing unfiltered.
		MainCF: map[string]string{"milter_default_action": "tempfail"},
	})
	return h
}

// forwardedNDR is a message as an Outlook rule forwards a bounce: a new
// message from the user, "FW: " + the NDR's subject, the NDR quoted inline.
func forwardedNDR(from, to string, n int) []byte {
	return testenv.Message([][2]string{
		{"From", from},
		{"To", to},
		{"Subject", stormSubj},
		{"Message-ID", fmt.Sprintf("<fw-%d-%s>", n, from)},
		{"Date", time.Now().UTC().Format(time.RFC1123Z)},
	}, "\r\n\r\n-----Original Message-----\r\nFrom: Mail Delivery System <Mailer-Daemon@outside.example>\r\n"+
		"Sent: Monday, November 23, 2026 10:00 AM\r\nTo: "+from+"\r\nSubject: Mail delivery failed: returning message to sender\r\n\r\n"+
		"This message was created automatically by mail delivery software.\r\n\r\n"+
		"A message that you sent could not be delivered to one or more of its\r\nrecipients. This is a permanent error.\r\n\r\n  "+to+"\r\n    550 5.1.1 User unknown\r\n")
}

func ordinary(from, to, subject string) []byte {
	return testenv.Message([][2]string{
		{"From", from}, {"To", to}, {"Subject", subject},
		{"Date", time.Now().UTC().Format(time.RFC1123Z)},
	}, "Hello,\r\nsee you at lunch.\r\n")
}

func send(t *testing.T, ctx context.Context, h *hub, from string, to []string, msg []byte) {
	t.Helper()
	if err := testenv.SendMail(ctx, h.pf.SMTPAddr(), from, to, msg); err != nil {
		t.Fatalf("sending from %s: %v", from, err)
	}
}

func bySubject(msgs []smtpsink.Message, from, subject string) []smtpsink.Message {
	var out []smtpsink.Message
	for _, m := range msgs {
		if m.From == from && m.Subject == subject {
			out = append(out, m)
		}
	}
	return out
}

// TestForwardStormStoppedInPostfix is the walking skeleton's acceptance
// test: a mailbox rule of alice forwards 40 NDRs to a nonexistent outside
// address. 25 reach the outside, the other 15 are redirected to the
// quarantine mailbox; alice's ordinary mail flows during the block; bob's
// forwards are counted on their own.
func TestForwardStormStoppedInPostfix(t *testing.T) {
	requirePostfix(t)
	h := startHub(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	const alice, bob, typo = "alice@corp.example", "bob@corp.example", "nobody@outside.example"
	for i := 0; i < 40; i++ {
		send(t, ctx, h, alice, []string{typo}, forwardedNDR(alice, typo, i))
		if i == 30 {
			// During the block: alice's ordinary mail, to the same address too.
			send(t, ctx, h, alice, []string{"friend@outside.example", typo}, ordinary(alice, "friend@outside.example", "lunch on friday"))
		}
	}
	for i := 0; i < 5; i++ {
		send(t, ctx, h, bob, []string{typo}, forwardedNDR(bob, typo, i))
	}

	// 25 + 1 ordinary + 5 of bob's reach the outside; 15 the mailstore.
	h.settle(t, ctx, 31, 15)

	out := h.outside.Messages()
	if n := len(bySubject(out, alice, stormSubj)); n != 25 {
		t.Errorf("alice's forwarded NDRs at the outside sink: %d, want exactly 25", n)
	}
	if n := len(bySubject(out, alice, "lunch on friday")); n != 1 {
		t.Errorf("alice's ordinary message delivered %d times, want 1", n)
	} else if m := bySubject(out, alice, "lunch on friday")[0]; len(m.To) != 2 {
		t.Errorf("alice's ordinary message went to %v, want both recipients", m.To)
	}
	if n := len(bySubject(out, bob, stormSubj)); n != 5 {
		t.Errorf("bob's forwarded NDRs at the outside sink: %d, want 5", n)
	}
	if len(out) != 31 {
		t.Errorf("outside sink has %d messages, want 31", len(out))
	}

	held := h.mailstore.Messages()
	if len(held) != 15 {
		t.Fatalf("quarantine mailbox has %d messages, want 15", len(held))
	}
	for _, m := range held {
		if m.From != alice || m.Subject != stormSubj || len(m.To) != 1 || m.To[0] != quarantine {
			t.Fatalf("quarantined message from %q to %v subject %q", m.From, m.To, m.Subject)
		}
		if got := m.Header.Get("X-Loopbreaker-Original-Recipients"); !strings.Contains(got, typo) {
			t.Fatalf("quarantined message lacks the original recipient header: %q", got)
		}
		if got := m.Header.Get("X-Loopbreaker"); !strings.Contains(got, "rule=forward-storm") {
			t.Fatalf("quarantined message lacks the rule header: %q", got)
		}
	}
	// One log line per decision, with Postfix's queue id (the {i} macro
	// loopbreaker asks for at end of message).
	block := regexp.MustCompile(`msg="block started" queue_id=[0-9A-F]{6,} .*action=redirect rule=forward-storm key=alice@corp.example count=26 limit=25`)
	if !block.MatchString(h.daemon.Log()) {
		t.Errorf("the daemon did not log the block with the queue id:\n%s", h.daemon.Log())
	}
}

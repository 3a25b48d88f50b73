package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/loopbreaker/loopbreaker/testenv"
)

// policyFile writes a one-rule policy for forwarded NDRs to outside
// addresses with the given limit and action.
func policyFile(t *testing.T, limit, action string) string {
	return policyFileKeyed(t, limit, action, "sender")
}

func policyFileKeyed(t *testing.T, limit, action, key string) string {
	t.Helper()
	return writePolicy(t, forwardStormPolicy(limit, action, key, ""))
}

// forwardStormPolicy is a one-rule policy for forwarded NDRs to outside
// addresses with the given limit, action and key; extra holds further lines
// of the rule.
func forwardStormPolicy(limit, action, key, extra string) string {
	return `local_domains = ["corp.example"]
quarantine_mailbox = "quarantine@corp.example"

[[rule]]
name = "forward-storm"
kinds = ["forwarded-ndr"]
direction = "outbound"
key = "` + key + `"
limit = ` + limit + `
window = "15m"
action = "` + action + `"
block_for = "1h"
` + extra
}

// startStormHub is startHub with policyFile(t, limit, action) and further
// daemon arguments, and the context for the test's mail: it ends after two
// minutes, or with the test.
func startStormHub(t *testing.T, limit, action string, daemonArgs ...string) (*hub, context.Context) {
	t.Helper()
	h := startHub(t, append([]string{"-policy", policyFile(t, limit, action)}, daemonArgs...)...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return h, ctx
}

// sendStorm sends the forwarded NDRs first to end-1 from sender from to
// the outside address to through h.
func sendStorm(t *testing.T, ctx context.Context, h *hub, from, to string, first, end int) {
	t.Helper()
	for i := first; i < end; i++ {
		send(t, ctx, h, from, []string{to}, forwardedNDR(from, to, i))
	}
}

// TestQuarantineHoldsInPostfixAndReleaseDelivers: the quarantine action puts
// the messages over the limit in Postfix's hold queue; postsuper -H
// releases them and they are delivered. Nothing is lost.
func TestQuarantineHoldsInPostfixAndReleaseDelivers(t *testing.T) {
	requirePostfix(t)
	h, ctx := startStormHub(t, "3", "quarantine")
	const alice, typo = "alice@corp.example", "nobody@outside.example"
	sendStorm(t, ctx, h, alice, typo, 0, 5)
	h.settle(t, ctx, 3, 0)
	held, err := h.pf.HeldCount()
	if err != nil || held != 2 {
		t.Fatalf("hold queue has %d messages (%v), want 2", held, err)
	}
	if n := h.outside.Count(); n != 3 {
		t.Fatalf("outside got %d while 2 are held, want 3", n)
	}
	if out, err := h.pf.Postsuper("-H", "ALL"); err != nil {
		t.Fatalf("postsuper -H ALL: %v %s", err, out)
	}
	if err := h.outside.WaitCount(ctx, 5); err != nil {
		t.Fatalf("released messages not delivered: %v", err)
	}
	if held, _ := h.pf.HeldCount(); held != 0 {
		t.Fatalf("%d still held after release", held)
	}
}

// TestRejectTellsTheSenderWhy: the reject action refuses the message over
// the limit at end of DATA with a 550 5.7.1 that names the reason.
func TestRejectTellsTheSenderWhy(t *testing.T) {
	requirePostfix(t)
	h, ctx := startStormHub(t, "2", "reject")
	const alice, typo = "alice@corp.example", "nobody@outside.example"
	sendStorm(t, ctx, h, alice, typo, 0, 2)
	err := sendErr(ctx, h, alice, typo, forwardedNDR(alice, typo, 2))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 || !strings.Contains(se.Message, "loopbreaker") || !strings.Contains(se.Message, "mail loop suspected") {
		t.Fatalf("third message: %v, want 550 with the reason", err)
	}
	if se.EnhancedCode != (smtp.EnhancedCode{5, 7, 1}) {
		t.Errorf("enhanced code %v, want 5.7.1", se.EnhancedCode)
	}
	// Ordinary mail still goes.
	send(t, ctx, h, alice, []string{typo}, ordinary(alice, typo, "sorry about the noise"))
	if err := h.outside.WaitCount(ctx, 3); err != nil {
		t.Fatal(err)
	}
}

func sendErr(ctx context.Context, h *hub, from, to string, msg []byte) error {
	return testenv.SendMail(ctx, h.pf.SMTPAddr(), from, []string{to}, msg)
}

// TestBlockSurvivesKill9: the daemon is killed with SIGKILL during a storm
// and restarted on the same state file; the block is still in force.
func TestBlockSurvivesKill9(t *testing.T) {
	requirePostfix(t)
	h, ctx := startStormHub(t, "3", "redirect")
	const alice, typo = "alice@corp.example", "nobody@outside.example"
	sendStorm(t, ctx, h, alice, typo, 0, 5)
	h.daemon.Kill()
	if err := h.daemon.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	sendStorm(t, ctx, h, alice, typo, 5, 8)
	if err := h.mailstore.WaitCount(ctx, 5); err != nil {
		t.Fatalf("quarantine mailbox got %d, want 5 (2 before the kill, 3 after): %v", h.mailstore.Count(), err)
	}
	if err := h.pf.WaitQueueEmpty(ctx); err != nil {
		t.Fatal(err)
	}
	if n := h.outside.Count(); n != 3 {
		t.Fatalf("outside got %d, want exactly the 3 within the limit", n)
	}
}

// TestClientIPKeyFromPostfixMacros: Postfix sends the {client_addr} macro
// loopbreaker asks for at MAIL FROM, so rules can count by client address.
func TestClientIPKeyFromPostfixMacros(t *testing.T) {
	requirePostfix(t)
	h := startHub(t, "-policy", policyFileKeyed(t, "1", "reject", "client-ip"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	send(t, ctx, h, "alice@corp.example", []string{"x@outside.example"}, forwardedNDR("alice@corp.example", "x@outside.example", 0))
	err := sendErr(ctx, h, "bob@corp.example", "y@outside.example", forwardedNDR("bob@corp.example", "y@outside.example", 1))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 || !strings.Contains(se.Message, "for 127.0.0.1 ") {
		t.Fatalf("second sender from the same client: %v, want 550 naming 127.0.0.1", err)
	}
}

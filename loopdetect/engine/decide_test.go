package engine

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/loopbreaker/loopbreaker/loopdetect/classify"
	"github.com/loopbreaker/loopbreaker/loopdetect/policy"
	"github.com/loopbreaker/loopbreaker/state"
	"github.com/loopbreaker/loopbreaker/testenv"
)

func newEngine(t *testing.T) *Engine {
	t.Helper()
	e, _ := engineIn(t, "", "quarantine@corp.example")
	return e
}

// newEngineWith is newEngine with the policy src instead of the default.
func newEngineWith(t *testing.T, src string) (*Engine, *policy.Policy) {
	t.Helper()
	p, err := policy.Parse("t.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(t)
	e.SetPolicy(p)
	return e, p
}

func message(t *testing.T, from, to, subject string) *classify.Message {
	t.Helper()
	raw := "From: " + from + "\r\nTo: " + to + "\r\nSubject: " + subject + "\r\n\r\nbody\r\n"
	m, err := classify.ReadMessage(strings.NewReader(raw), classify.Envelope{Sender: from, Recipients: []string{to}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestForwardStormRedirectsAfterLimit(t *testing.T) {
	e := newEngine(t)
	ctx := context.Background()
	var passed, redirected int
	for i := 0; i < 40; i++ {
		d := e.Decide(ctx, message(t, "alice@corp.example", "typo@outside.example", "FW: Mail delivery failed: returning message to sender"))
		switch d.Action {
		case policy.ActionNone:
			passed++
		case policy.ActionRedirect:
			redirected++
			if d.QuarantineMailbox != "quarantine@corp.example" || d.Rule != "forward-storm" || d.Key != "alice@corp.example" {
				t.Fatalf("decision %+v", d)
			}
			if (i == 25) != d.NewBlock {
				t.Fatalf("message %d NewBlock=%v", i, d.NewBlock)
			}
		default:
			t.Fatalf("unexpected action %q", d.Action)
		}
	}
	if passed != 25 || redirected != 15 {
		t.Fatalf("passed %d redirected %d, want 25 and 15", passed, redirected)
	}
	evs := e.store.(*state.Store).Events(0)
	if len(evs) != 15 || !evs[0].NewBlock || evs[0].Rule != "forward-storm" || evs[0].Action != "redirect" || evs[14].Acted != 15 || evs[14].Count != 26 {
		t.Fatalf("audit trail: %d events, first %+v", len(evs), evs)
	}
	// Ordinary mail of the same sender flows during the block.
	if d := e.Decide(ctx, message(t, "alice@corp.example", "typo@outside.example", "lunch?")); d.Action != policy.ActionNone {
		t.Fatalf("ordinary mail got %q", d.Action)
	}
	// Another sender is counted on its own.
	if d := e.Decide(ctx, message(t, "bob@corp.example", "x@outside.example", "FW: failure notice")); d.Action != policy.ActionNone || d.Hits[0].Count != 1 {
		t.Fatalf("bob: %+v", d)
	}
	// Forwarded NDRs to local recipients are not outbound.
	if d := e.Decide(ctx, message(t, "alice@corp.example", "helpdesk@corp.example", "FW: failure notice")); d.Action != policy.ActionNone || len(d.Hits) != 0 {
		t.Fatalf("local forward: %+v", d)
	}
}

func TestRedirectWithoutMailboxQuarantines(t *testing.T) {
	e := newEngine(t)
	p := policy.Default()
	p.Apply(policy.Overrides{LocalDomains: []string{"corp.example"}})
	e.SetPolicy(p)
	var d Decision
	for i := 0; i < 26; i++ {
		d = e.Decide(context.Background(), message(t, "alice@corp.example", "typo@outside.example", "FW: Undeliverable: x"))
	}
	if d.Action != policy.ActionQuarantine {
		t.Fatalf("action %q, want quarantine", d.Action)
	}
	if d.RuleAction != policy.ActionRedirect || d.Fallback != FallbackNoQuarantineMailbox || d.QuarantineMailbox != "" {
		t.Fatalf("rule action %q, fallback %q, mailbox %q", d.RuleAction, d.Fallback, d.QuarantineMailbox)
	}
}

const bounceRejectPolicy = `local_domains = ["corp.example"]
[[rule]]
name = "bounces-to-recipient"
kinds = ["bounce"]
direction = "inbound"
key = "recipient"
limit = 1
window = "10m"
action = "reject"
block_for = "1h"
`

func bounce(t *testing.T) *classify.Message {
	t.Helper()
	raw := "From: MAILER-DAEMON@corp.example\r\nSubject: Undelivered Mail Returned to Sender\r\n\r\nb\r\n"
	m, err := classify.ReadMessage(strings.NewReader(raw), classify.Envelope{Recipients: []string{"list@corp.example"}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRefusalWithoutSMTPClientHolds: the engine, not the milter, turns a
// reject of mail without an SMTP client into a hold, and says so; at RCPT
// TO such mail is never refused, while an SMTP client's bounce is.
func TestRefusalWithoutSMTPClientHolds(t *testing.T) {
	e, _ := newEngineWith(t, bounceRejectPolicy)
	ctx := context.Background()
	if d := e.DecideFrom(ctx, WithoutSMTPClient, bounce(t)); d.Action != policy.ActionNone {
		t.Fatalf("within the limit: %+v", d)
	}
	d := e.DecideFrom(ctx, WithoutSMTPClient, bounce(t))
	if d.Action != policy.ActionQuarantine || d.RuleAction != policy.ActionReject || d.Fallback != FallbackNoSMTPClient || d.Reply != "" || d.ReplyCode != 0 {
		t.Fatalf("without an SMTP client: %+v", d)
	}
	evs := e.store.(*state.Store).Events(0)
	if len(evs) != 1 || evs[0].Action != "quarantine" {
		t.Fatalf("audit trail: %+v", evs)
	}
	d = e.Decide(ctx, bounce(t))
	if d.Action != policy.ActionReject || d.RuleAction != policy.ActionReject || d.Fallback != "" || d.ReplyCode != 550 || !strings.HasPrefix(d.Reply, "5.7.1 ") {
		t.Fatalf("from an SMTP client: %+v", d)
	}
	env := classify.Envelope{}
	if d := e.CheckRecipient(ctx, WithoutSMTPClient, env, "list@corp.example"); d.Action != policy.ActionNone {
		t.Fatalf("refused at RCPT without an SMTP client: %+v", d)
	}
	d = e.CheckRecipient(ctx, FromSMTPClient, env, "list@corp.example")
	if d.Action != policy.ActionReject || d.ReplyCode != 550 || !strings.HasPrefix(d.Reply, "5.7.1 ") {
		t.Fatalf("at RCPT from an SMTP client: %+v", d)
	}
}

// TestReplyCodes: the code and the enhanced status code agree with the
// action, whatever the rule's text says.
func TestReplyCodes(t *testing.T) {
	for _, tt := range []struct {
		action policy.Action
		text   string
		code   int
		reply  string
	}{
		{policy.ActionReject, "", 550, "5.7.1 loopbreaker: "},
		{policy.ActionTempfail, "", 451, "4.7.1 loopbreaker: "},
		{policy.ActionTempfail, "5.7.0 go away", 451, "4.7.0 go away"},
		{policy.ActionReject, "4.7.0 later", 550, "5.7.0 later"},
		{policy.ActionTempfail, "loop", 451, "4.7.1 loop"},
	} {
		d := Decision{Action: tt.action, Rule: "r", Key: "k"}
		code, reply := reply(&policy.Rule{SMTPText: tt.text}, &d)
		if code != tt.code || !strings.HasPrefix(reply, tt.reply) {
			t.Errorf("%s %q: %d %q, want %d %q...", tt.action, tt.text, code, reply, tt.code, tt.reply)
		}
	}
}

func TestRejectReplyTellsWhy(t *testing.T) {
	src := `local_domains = ["corp.example"]
[[rule]]
name = "fw"
kinds = ["forwarded-ndr"]
direction = "outbound"
key = "sender"
limit = 1
window = "1h"
action = "reject"
block_for = "1h"
`
	e, _ := newEngineWith(t, src)
	e.Decide(context.Background(), message(t, "alice@corp.example", "typo@outside.example", "FW: failure notice"))
	d := e.Decide(context.Background(), message(t, "alice@corp.example", "typo@outside.example", "FW: failure notice"))
	if d.Action != policy.ActionReject || !strings.HasPrefix(d.Reply, "5.7.1 loopbreaker: mail loop suspected: more than 1 forwarded-ndr messages for alice@corp.example in 1h0m0s (rule fw); blocked until ") {
		t.Fatalf("reply %q", d.Reply)
	}
}

type brokenStore struct{}

func (brokenStore) Hit(context.Context, state.Request) (state.Result, error) {
	return state.Result{}, errors.New("disk full")
}
func (brokenStore) Blocked(string, string) (state.Block, bool) { return state.Block{}, false }
func (brokenStore) Record(state.Event)                         {}

func TestStoreFailureFailsOpen(t *testing.T) {
	p := policy.Default()
	p.Apply(policy.Overrides{LocalDomains: []string{"corp.example"}})
	e := New(p, brokenStore{}, nil)
	for i := 0; i < 30; i++ {
		d := e.Decide(context.Background(), message(t, "alice@corp.example", "typo@outside.example", "FW: failure notice"))
		if d.Action != policy.ActionNone || d.StoreErr == nil {
			t.Fatalf("decision with a broken store: %+v", d)
		}
	}
}

func TestHopCeilingActsWithoutState(t *testing.T) {
	e := newEngine(t)
	raw := strings.Repeat("Received: from a by b; Mon, 23 Nov 2026 10:00:00 +0000\r\n", 31) + "Subject: hi\r\n\r\n"
	m, _ := classify.ReadMessage(strings.NewReader(raw), classify.Envelope{Sender: "a@x.example", Recipients: []string{"b@corp.example"}}, 0)
	d := e.Decide(context.Background(), m)
	if d.Action != policy.ActionQuarantine || d.Rule != "hop-ceiling" {
		t.Fatalf("%+v", d)
	}
}

// TestPolicyBodyLimitReachesTheClassifier: with body_limit = 1 MiB, an NDR
// whose report text begins after the classifier's own default limit (256
// KiB of a long first text) is still recognized and acted on.
func TestPolicyBodyLimitReachesTheClassifier(t *testing.T) {
	e, p := newEngineWith(t, testenv.BodyLimitPolicy)
	filler := testenv.LateReportFiller()
	raw := "From: someone@outside.example\r\nTo: list@corp.example\r\nSubject: Your message\r\n\r\n" + testenv.LateReportNDR()
	if len(filler) <= classify.DefaultBodyLimit {
		t.Fatalf("filler of %d bytes does not pass the default limit", len(filler))
	}
	m, err := classify.ReadMessage(strings.NewReader(raw), classify.Envelope{Recipients: []string{"list@corp.example"}}, p.BodyLimit)
	if err != nil {
		t.Fatal(err)
	}
	d := e.Decide(context.Background(), m)
	if d.Verdict.Kind != classify.KindBounce || d.Action != policy.ActionTag {
		t.Fatalf("kind %q action %q (%s), want a tagged bounce", d.Verdict.Kind, d.Action, d.Verdict.Explain())
	}
}

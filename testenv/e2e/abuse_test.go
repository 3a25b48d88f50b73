package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/loopbreaker/loopbreaker/state"
	"github.com/loopbreaker/loopbreaker/testenv"
)

// Issue 9, abuse: what an outsider (or a forged header) can make
// loopbreaker do, through a real Postfix.

func writePolicy(t *testing.T, src string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "policy.toml")
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// forgedNDR is a forwarded NDR from envelope sender from with extra
// (forged) header fields.
func forgedNDR(from, to string, n int, extra ...[2]string) []byte {
	msg := forwardedNDR(from, to, n)
	var b strings.Builder
	for _, h := range extra {
		b.WriteString(h[0] + ": " + h[1] + "\r\n")
	}
	return append([]byte(b.String()), msg...)
}

func blocksJSON(t *testing.T, h *hub) []state.Block {
	t.Helper()
	out, err := lb(t, h, "blocks", "-json")
	if err != nil {
		t.Fatalf("blocks: %v\n%s", err, out)
	}
	var bs []state.Block
	if err := json.Unmarshal([]byte(out), &bs); err != nil {
		t.Fatalf("blocks -json: %v\n%s", err, out)
	}
	return bs
}

// TestForgedHeadersCannotExemptOrLiftABlock: the policy exempts the
// postmaster and a partner domain by envelope. A storm from alice whose
// headers claim to be the postmaster's, to come from the partner, to be
// released or exempted by loopbreaker itself, is counted and blocked like
// any other; once the block is in force, more such headers do not lift it.
// The same storm from the postmaster's envelope address is exempt: the
// exemption works, and only the envelope can claim it.
func TestForgedHeadersCannotExemptOrLiftABlock(t *testing.T) {
	requirePostfix(t)
	pol := writePolicy(t, forwardStormPolicy("2", "redirect", "sender", `exempt_senders = ["postmaster@corp.example"]
exempt_domains = ["partner.example"]
`))
	h := startHub(t, "-policy", pol)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const alice, typo = "alice@corp.example", "nobody@outside.example"
	forged := [][2]string{
		{"X-Loopbreaker", "released; rule=forward-storm; exempt=yes"},
		{"X-Loopbreaker-Original-Recipients", typo},
		{"X-Loopbreaker-Exempt", "yes"},
		{"Sender", "postmaster@corp.example"},
		{"Return-Path", "<postmaster@corp.example>"},
		{"Reply-To", "someone@partner.example"},
		{"Resent-From", "postmaster@corp.example"},
		{"Auto-Submitted", "no"},
		{"Precedence", "bulk"},
		{"List-Id", "<staff.lists.corp.example>"},
	}
	for i := 0; i < 3; i++ {
		send(t, ctx, h, alice, []string{typo}, forgedNDR(alice, typo, i, forged...))
	}
	bs := blocksJSON(t, h)
	if len(bs) != 1 || bs[0].Key != alice {
		t.Fatalf("after 3 forged-header forwards (limit 2) the blocks are %+v, want alice's", bs)
	}
	// Headers that claim a release do not lift the block.
	lift := append(forged, [2]string{"X-Loopbreaker-Release", alice}, [2]string{"X-Loopbreaker", "release " + alice})
	for i := 3; i < 6; i++ {
		send(t, ctx, h, alice, []string{typo}, forgedNDR(alice, typo, i, lift...))
	}
	// The exemption itself works, by envelope.
	for i := 0; i < 4; i++ {
		send(t, ctx, h, "postmaster@corp.example", []string{typo}, forwardedNDR("postmaster@corp.example", typo, i))
	}
	h.settle(t, ctx, 6, 4)
	out := h.outside.Messages()
	if n := len(bySubject(out, alice, stormSubj)); n != 2 {
		t.Errorf("%d of alice's forged-header forwards reached the outside, want exactly the limit, 2", n)
	}
	if n := len(bySubject(out, "postmaster@corp.example", stormSubj)); n != 4 {
		t.Errorf("%d of the postmaster's (exempt by envelope) forwards reached the outside, want 4", n)
	}
	if n := h.mailstore.Count(); n != 4 {
		t.Errorf("quarantine got %d, want alice's 4 beyond the limit", n)
	}
	if bs := blocksJSON(t, h); len(bs) != 1 || bs[0].Count != 4 {
		t.Errorf("blocks after the forged releases: %+v; want alice's, acted on 4 times", bs)
	}
}

// bounceTo is an NDR from an outside MTA to rcpt (the null sender), about
// a message rcpt supposedly sent.
func bounceTo(rcpt string, n int) []byte {
	b := fmt.Sprintf("B%d/mx.partner.example", n)
	return testenv.Message([][2]string{
		{"From", "MAILER-DAEMON@mx.partner.example (Mail Delivery System)"},
		{"To", rcpt},
		{"Subject", "Undelivered Mail Returned to Sender"},
		{"Auto-Submitted", "auto-replied"},
		{"Message-ID", fmt.Sprintf("<ndr-%d@mx.partner.example>", n)},
		{"MIME-Version", "1.0"},
		{"Content-Type", `multipart/report; report-type=delivery-status; boundary="` + b + `"`},
	}, "--"+b+"\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you that your message could not\r\nbe delivered to one or more recipients.\r\n\r\n"+
		"--"+b+"\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.partner.example\r\n\r\n"+
		"Final-Recipient: rfc822; nobody@partner.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"+
		"--"+b+"\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: "+rcpt+"\r\nTo: nobody@partner.example\r\nSubject: hi\r\n"+
		fmt.Sprintf("Message-ID: <orig-%d@corp.example>\r\n", n)+"\r\n--"+b+"--\r\n")
}

func autoReplyTo(rcpt string, n int) []byte {
	return testenv.Message([][2]string{
		{"From", "Out of office <ooo@partner.example>"},
		{"To", rcpt},
		{"Subject", "Automatic reply: hello"},
		{"Auto-Submitted", "auto-replied"},
		{"Message-ID", fmt.Sprintf("<ooo-%d@partner.example>", n)},
	}, "I am out of the office until Monday.\r\n")
}

// TestOutsiderCannotBlockAUsersOrdinaryMail: an outsider forges a bounce
// storm to bob, a run of auto-replies to bob, and forwarded NDRs with bob's
// address as the envelope sender. That gets those bounces rejected, those
// auto-replies discarded and those forwards redirected, each after its
// limit, and nothing else: ordinary mail to bob, from bob (to the outsider
// too) and between bob and a colleague is delivered, every one.
func TestOutsiderCannotBlockAUsersOrdinaryMail(t *testing.T) {
	requirePostfix(t)
	h := startHub(t) // the built-in policy
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const bob, outsider, typo = "bob@corp.example", "mallory@partner.example", "nobody@outside.example"
	// The auto-replies first: once bob's bounce block is in force, any mail
	// to him from the null sender (auto-replies too) is refused at RCPT.
	for i := 0; i < 8; i++ { // autoreply-pingpong: 5 per hour, then discard
		send(t, ctx, h, "", []string{bob}, autoReplyTo(bob, i))
	}
	rejected := 0
	for i := 0; i < 55; i++ { // bounces-to-recipient: 50 per 10 min
		err := testenv.SendMail(ctx, h.pf.SMTPAddr(), "", []string{bob}, bounceTo(bob, i))
		var se *smtp.SMTPError
		switch {
		case err == nil:
		case errors.As(err, &se) && se.Code == 550:
			rejected++
		default:
			t.Fatalf("bounce %d: %v", i, err)
		}
	}
	if rejected != 5 {
		t.Errorf("%d of 55 bounces to bob rejected, want the 5 beyond the limit of 50", rejected)
	}
	for i := 0; i < 27; i++ { // forward-storm: 25 per 15 min, forged as bob's
		send(t, ctx, h, bob, []string{typo}, forwardedNDR(bob, typo, i))
	}
	// Ordinary mail to and from bob.
	ordinaryMail := []struct{ from, to, subject string }{
		{outsider, bob, "invoice 1"},
		{"carol@partner.example", bob, "lunch?"},
		{bob, outsider, "re: invoice 1"},
		{bob, typo, "are you there?"},
		{bob, "dave@corp.example", "meeting notes"},
		{"dave@corp.example", bob, "re: meeting notes"},
	}
	for _, m := range ordinaryMail {
		send(t, ctx, h, m.from, []string{m.to}, ordinary(m.from, m.to, m.subject))
	}
	if err := h.pf.WaitQueueEmpty(ctx); err != nil {
		t.Fatal(err)
	}
	all := append(h.outside.Messages(), h.mailstore.Messages()...)
	for _, m := range ordinaryMail {
		n := 0
		for _, got := range all {
			if got.From == m.from && got.Subject == m.subject {
				n++
				if len(got.To) != 1 || got.To[0] != m.to {
					t.Errorf("ordinary %q from %s went to %v, want %s", m.subject, m.from, got.To, m.to)
				}
			}
		}
		if n != 1 {
			t.Errorf("ordinary %q from %s to %s delivered %d times, want 1", m.subject, m.from, m.to, n)
		}
	}
	var bounces, replies, quarantined int
	for _, m := range h.mailstore.Messages() {
		switch {
		case m.Subject == "Undelivered Mail Returned to Sender":
			bounces++
		case strings.HasPrefix(m.Subject, "Automatic reply"):
			replies++
		case len(m.To) == 1 && m.To[0] == quarantine:
			quarantined++
		}
	}
	if bounces != 50 || replies != 5 || quarantined != 2 {
		t.Errorf("bob got %d bounces (want 50), %d auto-replies (want 5); quarantine got %d forwards (want 2)", bounces, replies, quarantined)
	}
	// The blocks are all on the storm rules, none on ordinary mail.
	rules := map[string]bool{}
	for _, b := range blocksJSON(t, h) {
		rules[b.Rule] = true
	}
	for r := range rules {
		if r != "bounces-to-recipient" && r != "autoreply-pingpong" && r != "forward-storm" {
			t.Errorf("a block of rule %s", r)
		}
	}
	if len(rules) != 3 {
		t.Errorf("blocks on rules %v, want bounces-to-recipient, autoreply-pingpong and forward-storm", rules)
	}
}

// TestStormSpellingsCountAsOneKey: a forwarding storm whose envelope
// sender varies in case, subaddress and the case of its punycode (IDN)
// domain is counted as one sender: exactly the limit passes. Senders that
// only look alike (a dot, one more letter, the domain without its umlaut,
// the tag as the mailbox, a longer domain) are not merged with it: each
// passes. (UTF-8 spellings of the domain, which need SMTPUTF8 end to end,
// are checked over the milter protocol: milter.TestIDNSpellingsAreOneKey.)
func TestStormSpellingsCountAsOneKey(t *testing.T) {
	requirePostfix(t)
	pol := policyFile(t, "3", "redirect")
	h := startHub(t, "-policy", pol)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const typo = "nobody@outside.example"
	spellings := []string{
		"alice@xn--bcher-kva.example",
		"ALICE@XN--BCHER-KVA.EXAMPLE",
		"Alice+fw1@xn--bcher-kva.EXAMPLE",
		"alice+loop@Xn--Bcher-Kva.Example",
		"aLiCe+x+y@xn--bcher-kva.example",
		"ALICE+FW2@XN--BCHER-KVA.example",
	}
	for i, s := range spellings {
		send(t, ctx, h, s, []string{typo}, forwardedNDR(s, typo, i))
	}
	others := []string{"alice.b@xn--bcher-kva.example", "alicea@xn--bcher-kva.example", "alice@bucher.example", "fw1@xn--bcher-kva.example", "alice@xn--bcher-kva.example.org"}
	for i, s := range others {
		send(t, ctx, h, s, []string{typo}, forwardedNDR(s, typo, 100+i))
	}
	if err := h.pf.WaitQueueEmpty(ctx); err != nil {
		t.Fatal(err)
	}
	if n := h.mailstore.Count(); n != len(spellings)-3 {
		t.Errorf("quarantine got %d, want %d: the spellings of one sender were not counted as one", n, len(spellings)-3)
	}
	bs := blocksJSON(t, h)
	if len(bs) != 1 || bs[0].Key != "alice@xn--bcher-kva.example" {
		t.Errorf("blocks %+v, want one, on alice@xn--bcher-kva.example", bs)
	}
	passed := map[string]bool{}
	for _, m := range h.outside.Messages() {
		passed[m.From] = true
	}
	for _, s := range others {
		if !passed[s] {
			t.Errorf("%s's forward was not delivered: merged with alice's key? (delivered from %v)", s, passed)
		}
	}
}

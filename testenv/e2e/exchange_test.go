package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/loopbreaker/loopbreaker/testenv"
)

// The relay position of docs/exchange.md ("(A) The relay Exchange sends
// through"): the hub is the smart host of corp.example's send connector.
// Mail comes from the Exchange server's address (exchangeServer, one of
// the loopback addresses inside the hub's mynetworks) with a local user as
// envelope sender, and carries the headers Exchange writes.

const (
	exchangeServer = "127.0.0.21" // EX01
	exTypo         = "nobody@outsde.example"
	exNDRSubject   = "Undeliverable: quarterly numbers"
	exStormSubj    = "FW: " + exNDRSubject
	// exSystemMailbox is the sender of Exchange's NDRs.
	exSystemMailbox = "MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@corp.example"
)

// sendFromExchange submits msg to the hub from the Exchange server's
// address, as the send connector does.
func sendFromExchange(t *testing.T, ctx context.Context, h *hub, from string, to []string, msg []byte) {
	t.Helper()
	if err := sendFromExchangeErr(ctx, h.pf.SMTPAddr(), from, to, msg); err != nil {
		t.Fatalf("sending from %s via %s: %v", from, exchangeServer, err)
	}
}

func sendFromExchangeErr(ctx context.Context, addr, from string, to []string, msg []byte) error {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(exchangeServer)}}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello("ex01.corp.example"); err != nil {
		return err
	}
	if err := c.SendMail(from, to, strings.NewReader(string(msg))); err != nil {
		return err
	}
	return c.Quit()
}

// exchangeForwardedNDR is what an Outlook/Exchange inbox rule of user that
// forwards everything to target makes of Exchange's NDR about the
// previous forward: "FW: Undeliverable: ...", the NDR quoted Outlook
// style, and the two headers Exchange's Mailbox Rules Agent writes.
func exchangeForwardedNDR(user, target string, n int) []byte {
	return testenv.Message([][2]string{
		{"From", user},
		{"To", target},
		{"Subject", exStormSubj},
		{"Message-ID", fmt.Sprintf("<fw-%d-%s>", n, user)},
		{"Date", time.Now().UTC().Format(time.RFC1123Z)},
		{"X-MS-Exchange-Inbox-Rules-Loop", user},
		{"X-MS-Exchange-Generated-Message-Source", "Mailbox Rules Agent"},
		{"X-MS-Exchange-Organization-AuthAs", "Internal"},
	}, "\r\n________________________________\r\n"+
		"From: Microsoft Outlook <"+exSystemMailbox+">\r\n"+
		"Sent: Monday, November 23, 2026 10:00 AM\r\n"+
		"To: "+user+"\r\n"+
		"Subject: "+exNDRSubject+"\r\n\r\n"+
		"Delivery has failed to these recipients or groups:\r\n\r\n"+
		target+"\r\n"+
		"The email address you entered couldn't be found. Please check the recipient's email address and try to resend the message.\r\n")
}

// exchangeRedirectedNDR is Exchange's NDR as a mailbox rule of user
// redirected it: the NDR unchanged (X-MS-Exchange-Message-Is-Ndr, its
// subject and text), the rule's X-MS-Exchange-Inbox-Rules-Loop added,
// the user as envelope sender. Only the inbox-rule header tells it from
// the NDR itself (a bounce): docs/exchange.md, "a report carrying it from
// a non-null sender ... is a forwarded-ndr, not a bounce".
func exchangeRedirectedNDR(user, target string, n int) []byte {
	return testenv.Message([][2]string{
		{"From", "Microsoft Outlook <" + exSystemMailbox + ">"},
		{"To", user},
		{"Subject", exNDRSubject},
		{"Message-ID", fmt.Sprintf("<redir-%d-%s>", n, user)},
		{"Date", time.Now().UTC().Format(time.RFC1123Z)},
		{"X-MS-Exchange-Message-Is-Ndr", ""},
		{"X-MS-Exchange-Inbox-Rules-Loop", user},
	}, "Delivery has failed to these recipients or groups:\r\n\r\n"+target+"\r\n")
}

// exchangeNDR is an NDR Exchange wrote to an outside sender. Its text and
// subject carry no sign of a report a classifier would know: only
// X-MS-Exchange-Message-Is-Ndr (and the null sender) say what it is.
func exchangeNDR(to string) []byte {
	return testenv.Message([][2]string{
		{"From", "Carol <carol@corp.example>"},
		{"To", to},
		{"Subject", "quarterly numbers"},
		{"Message-ID", "<ndr-1@corp.example>"},
		{"Date", time.Now().UTC().Format(time.RFC1123Z)},
		{"X-MS-Exchange-Message-Is-Ndr", ""},
		{"X-MS-Exchange-Generated-Message-Source", "DSN"},
	}, "About your message of Monday.\r\n")
}

// exchangeOrdinary is a user's own message as it leaves Exchange, with
// X-MS-Exchange-Organization-* headers (those the header firewall lets
// through to a smart host in the organization).
func exchangeOrdinary(from, to, subject string) []byte {
	return testenv.Message([][2]string{
		{"From", from}, {"To", to}, {"Subject", subject},
		{"Message-ID", "<ord-" + strings.ReplaceAll(subject, " ", "-") + "@corp.example>"},
		{"Date", time.Now().UTC().Format(time.RFC1123Z)},
		{"X-MS-Exchange-Organization-AuthAs", "Internal"},
		{"X-MS-Exchange-Organization-MessageDirectionality", "Originating"},
		{"X-MS-Exchange-Organization-SCL", "-1"},
	}, "Hello,\r\nsee you at lunch.\r\n")
}

// daemonLines returns the daemon's log lines that contain all of subs.
func daemonLines(h *hub, subs ...string) []string {
	var out []string
	for _, l := range strings.Split(h.daemon.Log(), "\n") {
		ok := true
		for _, s := range subs {
			if !strings.Contains(l, s) {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

type classified struct {
	Kind    string `json:"kind"`
	Signals []struct {
		Name  string `json:"name"`
		Where string `json:"where"`
		Value string `json:"value"`
	} `json:"signals"`
}

func (c classified) signal(name, where string) (string, bool) {
	for _, s := range c.Signals {
		if s.Name == name && s.Where == where {
			return s.Value, true
		}
	}
	return "", false
}

// classifyFile runs `loopbreaker classify -json -from sender` on msg.
func classifyFile(t *testing.T, sender string, msg []byte) classified {
	t.Helper()
	p := filepath.Join(t.TempDir(), "msg.eml")
	if err := os.WriteFile(p, msg, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(daemonBin, "classify", "-json", "-from", sender, p).Output()
	if err != nil {
		t.Fatalf("loopbreaker classify: %v\n%s", err, out)
	}
	var c classified
	if err := json.Unmarshal(out, &c); err != nil {
		t.Fatalf("loopbreaker classify -json: %v\n%s", err, out)
	}
	return c
}

// TestExchangeInboxRuleForwardStormAtRelay: alice's Exchange inbox rule
// forwards every message, NDRs included, to a mistyped outside address;
// each forward of Exchange's NDR comes to the relay from the Exchange
// server. With the built-in policy (forward-storm: 25 in 15 minutes, then
// redirect) the first 25 reach the outside, the 26th and later go to the
// quarantine mailbox; the classifier's evidence names the Exchange
// mailbox-rule header; alice's ordinary mail with Exchange's organization
// headers, sent during the block, is delivered untouched.
func TestExchangeInboxRuleForwardStormAtRelay(t *testing.T) {
	requirePostfix(t)
	h := startHub(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const alice = "alice@corp.example"
	const lunch = "lunch on friday"

	for i := 0; i < 30; i++ {
		sendFromExchange(t, ctx, h, alice, []string{exTypo}, exchangeForwardedNDR(alice, exTypo, i))
		if i == 27 {
			// (c) during the block, to the same outside address too.
			sendFromExchange(t, ctx, h, alice, []string{"friend@outside.example", exTypo}, exchangeOrdinary(alice, "friend@outside.example", lunch))
		}
	}
	h.settle(t, ctx, 26, 5)

	out := h.outside.Messages()
	if n := len(bySubject(out, alice, exStormSubj)); n != 25 {
		t.Errorf("alice's forwarded NDRs at the outside: %d, want exactly 25", n)
	}
	if len(out) != 26 {
		t.Errorf("outside has %d messages, want 26 (25 forwards, 1 ordinary)", len(out))
	}
	held := h.mailstore.Messages()
	if len(held) != 5 {
		t.Fatalf("quarantine mailbox has %d messages, want 5 (the 26th to the 30th)", len(held))
	}
	for _, m := range held {
		if m.From != alice || m.Subject != exStormSubj || len(m.To) != 1 || m.To[0] != quarantine {
			t.Fatalf("quarantined message from %q to %v subject %q", m.From, m.To, m.Subject)
		}
		if got := m.Header.Get("X-Loopbreaker"); !strings.Contains(got, "rule=forward-storm") {
			t.Errorf("quarantined message's X-Loopbreaker: %q", got)
		}
		if got := m.Header.Get("X-Loopbreaker-Original-Recipients"); !strings.Contains(got, exTypo) {
			t.Errorf("quarantined message's original recipients: %q", got)
		}
		if got := m.Header.Get("X-MS-Exchange-Inbox-Rules-Loop"); got != alice {
			t.Errorf("quarantined message lost Exchange's header: %q", got)
		}
	}

	// The block, in the decision log, with the evidence: the mailbox-rule
	// header among the signals.
	blocks := daemonLines(h, `msg="block started"`, "rule=forward-storm", "key=alice@corp.example", "count=26", "limit=25", "action=redirect")
	if len(blocks) != 1 {
		t.Fatalf("block lines: %d, want 1\n%s", len(blocks), h.daemon.Log())
	}
	for _, want := range []string{`kind=forwarded-ndr`, `inbox-rule=\"Mailbox Rules Agent\"`, `subject-forwarded-ndr=\"FW: Undeliverable: quarterly numbers\"`} {
		if !strings.Contains(blocks[0], want) {
			t.Errorf("block line lacks %s:\n%s", want, blocks[0])
		}
	}
	// Each of the 25 that passed was counted as a forwarded NDR, with the
	// same evidence.
	if n := len(daemonLines(h, `msg=pass`, "kind=forwarded-ndr", "sender=alice@corp.example", `inbox-rule=\"Mailbox Rules Agent\"`)); n != 25 {
		t.Errorf("pass lines for alice's forwards with the inbox-rule signal: %d, want 25\n%s", n, h.daemon.Log())
	}
	// The same evidence from loopbreaker classify on the message.
	c := classifyFile(t, alice, exchangeForwardedNDR(alice, exTypo, 99))
	if c.Kind != "forwarded-ndr" {
		t.Errorf("classify: kind %s, want forwarded-ndr", c.Kind)
	}
	if v, ok := c.signal("inbox-rule", "header:X-MS-Exchange-Generated-Message-Source"); !ok || v != "Mailbox Rules Agent" {
		t.Errorf("classify: no inbox-rule signal from X-MS-Exchange-Generated-Message-Source: %+v", c.Signals)
	}

	// (c) the ordinary message: delivered once, to both recipients,
	// without loopbreaker's marks and with Exchange's headers as sent.
	ord := bySubject(out, alice, lunch)
	if len(ord) != 1 {
		t.Fatalf("alice's ordinary message delivered %d times, want 1", len(ord))
	}
	if len(ord[0].To) != 2 {
		t.Errorf("alice's ordinary message went to %v, want both recipients", ord[0].To)
	}
	for _, k := range []string{"X-Loopbreaker", "X-Loopbreaker-Original-Recipients"} {
		if v := ord[0].Header.Get(k); v != "" {
			t.Errorf("ordinary message carries %s: %q", k, v)
		}
	}
	if got := ord[0].Header.Get("X-MS-Exchange-Organization-MessageDirectionality"); got != "Originating" {
		t.Errorf("ordinary message's X-MS-Exchange-Organization-MessageDirectionality: %q", got)
	}
	if l := daemonLines(h, "sender=alice@corp.example", "kind=ordinary"); len(l) != 1 || strings.Contains(l[0], "action=") {
		t.Errorf("decision lines for the ordinary message: %q, want one pass", l)
	}
}

// TestExchangeRedirectedNDRCountsAsForward: a mailbox rule that redirects
// Exchange's NDRs (the NDR unchanged, X-MS-Exchange-Inbox-Rules-Loop
// added, the user as envelope sender) is a forward storm too. Only the
// inbox-rule header makes these forwarded NDRs rather than bounces, so
// this fails if the header is ignored: without it nothing counts them
// under forward-storm and all 27 go out.
func TestExchangeRedirectedNDRCountsAsForward(t *testing.T) {
	requirePostfix(t)
	h := startHub(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const dave = "dave@corp.example"

	for i := 0; i < 27; i++ {
		sendFromExchange(t, ctx, h, dave, []string{exTypo}, exchangeRedirectedNDR(dave, exTypo, i))
	}
	h.settle(t, ctx, 25, 2)
	if n := h.outside.Count(); n != 25 {
		t.Errorf("outside got %d redirected NDRs, want 25", n)
	}
	for _, m := range h.mailstore.Messages() {
		if m.From != dave || len(m.To) != 1 || m.To[0] != quarantine {
			t.Errorf("quarantined message from %q to %v", m.From, m.To)
		}
	}
	blocks := daemonLines(h, `msg="block started"`, "rule=forward-storm", "key=dave@corp.example", "count=26")
	if len(blocks) != 1 {
		t.Fatalf("block lines: %d, want 1\n%s", len(blocks), h.daemon.Log())
	}
	for _, want := range []string{"kind=forwarded-ndr", "exchange-ndr", "inbox-rule=dave@corp.example"} {
		if !strings.Contains(blocks[0], want) {
			t.Errorf("block line lacks %s:\n%s", want, blocks[0])
		}
	}
	c := classifyFile(t, dave, exchangeRedirectedNDR(dave, exTypo, 99))
	if v, ok := c.signal("inbox-rule", "header:X-MS-Exchange-Inbox-Rules-Loop"); c.Kind != "forwarded-ndr" || !ok || v != dave {
		t.Errorf("classify: %+v, want forwarded-ndr with inbox-rule from X-MS-Exchange-Inbox-Rules-Loop", c)
	}
}

// TestExchangeNDROutboundIsBounce: an NDR Exchange wrote to an outside
// sender passes the relay from the null sender. Its subject and text say
// nothing a classifier knows; X-MS-Exchange-Message-Is-Ndr makes it a
// bounce (signal exchange-ndr). It is delivered: no rule acts on one
// outbound bounce.
func TestExchangeNDROutboundIsBounce(t *testing.T) {
	requirePostfix(t)
	h := startHub(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const stranger = "stranger@outside.example"

	sendFromExchange(t, ctx, h, "", []string{stranger}, exchangeNDR(stranger))
	h.settle(t, ctx, 1, 0)
	m := h.outside.Messages()[0]
	if m.From != "" || len(m.To) != 1 || m.To[0] != stranger {
		t.Errorf("NDR delivered from %q to %v", m.From, m.To)
	}
	if v := m.Header.Get("X-Loopbreaker"); v != "" {
		t.Errorf("NDR carries X-Loopbreaker: %q", v)
	}
	if h.mailstore.Count() != 0 {
		t.Errorf("mailstore got %d messages, want none", h.mailstore.Count())
	}
	lines := daemonLines(h, "msg=pass", "kind=bounce")
	if len(lines) != 1 {
		t.Fatalf("pass lines with kind=bounce: %d, want 1\n%s", len(lines), h.daemon.Log())
	}
	if !strings.Contains(lines[0], `evidence="bounce: exchange-ndr`) {
		t.Errorf("the bounce's evidence does not start with exchange-ndr:\n%s", lines[0])
	}
	c := classifyFile(t, "<>", exchangeNDR(stranger))
	if _, ok := c.signal("exchange-ndr", "header:X-MS-Exchange-Message-Is-Ndr"); c.Kind != "bounce" || !ok {
		t.Errorf("classify: %+v, want bounce with exchange-ndr", c)
	}
}

package scenario

import (
	"strings"
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv/smtpsink"
)

// A forward-storm round as Postfix 3.7 logs it: alice's forward is refused
// by the outside at RCPT TO, the hub's NDR goes to alice's mailbox; then a
// forward that loopbreaker redirects to the quarantine mailbox, an ordinary
// message that goes on to the outside and is delivered there, a held one
// and a discarded one.
const hubLog = `Nov 23 01:24:38 hub postfix-hub/smtpd[31873]: C3EAD98C5B5: client=unknown[127.0.0.1]
Nov 23 01:24:38 hub postfix-hub/cleanup[32009]: C3EAD98C5B5: message-id=<fw.2@corp.example>
Nov 23 01:24:38 hub postfix-hub/qmgr[31871]: C3EAD98C5B5: from=<alice@corp.example>, size=612, nrcpt=1 (queue active)
Nov 23 01:24:38 hub postfix-hub/smtp[32010]: C3EAD98C5B5: to=<nobody@outside.example>, relay=127.0.0.2[127.0.0.2]:36157, delay=0.04, delays=0.01/0/0/0.03, dsn=5.1.1, status=bounced (host 127.0.0.2[127.0.0.2] said: 550 5.1.1 <nobody@outside.example>: Recipient address rejected: User unknown (in reply to RCPT TO command))
Nov 23 01:24:38 hub postfix-hub/cleanup[32009]: CC87C98C5B6: message-id=<20261123012438.CC87C98C5B6@hub.corp.example>
Nov 23 01:24:38 hub postfix-hub/qmgr[31871]: CC87C98C5B6: from=<>, size=2820, nrcpt=1 (queue active)
Nov 23 01:24:38 hub postfix-hub/bounce[32011]: C3EAD98C5B5: sender non-delivery notification: CC87C98C5B6
Nov 23 01:24:38 hub postfix-hub/qmgr[31871]: C3EAD98C5B5: removed
Nov 23 01:24:38 hub postfix-hub/smtp[32010]: CC87C98C5B6: to=<alice@corp.example>, relay=127.0.0.1[127.0.0.1]:41785, delay=0, delays=0/0/0/0, dsn=2.0.0, status=sent (250 2.0.0 OK: queued)
Nov 23 01:24:38 hub postfix-hub/qmgr[31871]: CC87C98C5B6: removed
Nov 23 01:24:39 hub postfix-hub/smtpd[31873]: D61B198C5B5: client=unknown[127.0.0.1]
Nov 23 01:24:39 hub postfix-hub/cleanup[32009]: D61B198C5B5: message-id=<fw.3@corp.example>
Nov 23 01:24:39 hub postfix-hub/qmgr[31871]: D61B198C5B5: from=<alice@corp.example>, size=1329, nrcpt=1 (queue active)
Nov 23 01:24:39 hub postfix-hub/smtp[32010]: D61B198C5B5: to=<quarantine@corp.example>, relay=127.0.0.1[127.0.0.1]:41785, delay=0, delays=0/0/0/0, dsn=2.0.0, status=sent (250 2.0.0 OK: queued)
Nov 23 01:24:39 hub postfix-hub/qmgr[31871]: D61B198C5B5: removed
Nov 23 01:24:39 hub postfix-hub/smtpd[31873]: E0000000001: client=unknown[127.0.0.1]
Nov 23 01:24:39 hub postfix-hub/cleanup[32009]: E0000000001: message-id=<ord.4@corp.example>
Nov 23 01:24:39 hub postfix-hub/qmgr[31871]: E0000000001: from=<alice@corp.example>, size=300, nrcpt=1 (queue active)
Nov 23 01:24:39 hub postfix-hub/smtp[32010]: E0000000001: to=<friend@outside.example>, relay=127.0.0.2[127.0.0.2]:36157, delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 924DC98C5B2)
Nov 23 01:24:39 hub postfix-hub/qmgr[31871]: E0000000001: removed
Nov 23 01:24:40 hub postfix-hub/smtpd[31873]: F0000000001: client=unknown[127.0.0.1]
Nov 23 01:24:40 hub postfix-hub/cleanup[32009]: F0000000001: message-id=<fw.5@corp.example>
Nov 23 01:24:40 hub postfix-hub/cleanup[32009]: F0000000001: milter-hold: END-OF-MESSAGE from unknown[127.0.0.1]: loopbreaker rule=x; from=<alice@corp.example> to=<nobody@outside.example> proto=ESMTP helo=<client.test>
Nov 23 01:24:40 hub postfix-hub/smtpd[31873]: F0000000002: client=unknown[127.0.0.2]
Nov 23 01:24:40 hub postfix-hub/cleanup[32009]: F0000000002: message-id=<ack.6@outside.example>
Nov 23 01:24:40 hub postfix-hub/cleanup[32009]: F0000000002: milter-discard: END-OF-MESSAGE from unknown[127.0.0.2]: milter triggers DISCARD action; from=<helpdesk@outside.example> to=<bob@corp.example> proto=ESMTP helo=<mx.outside.example>
`

const outsideLog = `Nov 23 01:24:39 mx postfix-outside/smtpd[32002]: 924DC98C5B2: client=unknown[127.0.0.1]
Nov 23 01:24:39 mx postfix-outside/cleanup[32005]: 924DC98C5B2: message-id=<ord.4@corp.example>
Nov 23 01:24:39 mx postfix-outside/qmgr[32000]: 924DC98C5B2: from=<alice@corp.example>, size=353, nrcpt=1 (queue active)
Nov 23 01:24:39 mx postfix-outside/smtp[32006]: 924DC98C5B2: to=<friend@outside.example>, relay=127.0.0.1[127.0.0.1]:33775, delay=0.23, delays=0.07/0.05/0.03/0.07, dsn=2.0.0, status=sent (250 2.0.0 OK: queued)
Nov 23 01:24:39 mx postfix-outside/qmgr[32000]: 924DC98C5B2: removed
Nov 23 01:24:40 mx postfix-outside/smtpd[32002]: 9000000000A: client=unknown[127.0.0.1]
Nov 23 01:24:40 mx postfix-outside/cleanup[32005]: 9000000000A: message-id=<ack.6@outside.example>
Nov 23 01:24:40 mx postfix-outside/qmgr[32000]: 9000000000A: from=<helpdesk@outside.example>, size=353, nrcpt=1 (queue active)
Nov 23 01:24:40 mx postfix-outside/smtp[32006]: 9000000000A: to=<bob@corp.example>, relay=127.0.0.1[127.0.0.1]:25000, delay=0.23, delays=0.07/0.05/0.03/0.07, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as F0000000002)
Nov 23 01:24:40 mx postfix-outside/qmgr[32000]: 9000000000A: removed
`

func TestLedgerFollowsEveryCopy(t *testing.T) {
	now := time.Now()
	hub := parseMaillog("hub", hubLog, now)
	out := parseMaillog("outside", outsideLog, now)
	if qf := hub.files["CC87C98C5B6"]; qf == nil || qf.parentNDR != "C3EAD98C5B5" || qf.from != "" {
		t.Fatalf("NDR queue file: %+v", qf)
	}
	sub := func(id, via, kind, from, to string) Submission {
		return Submission{MessageID: id, Via: via, Kind: kind, From: from, To: []string{to}, By: "test"}
	}
	in := ledgerInput{
		logs: map[string]*maillog{"hub": hub, "outside": out},
		submissions: []Submission{
			sub("<fw.2@corp.example>", "hub", "forwarded-ndr", Alice, Nobody),
			sub("<fw.3@corp.example>", "hub", "forwarded-ndr", Alice, Nobody),
			sub("<ord.4@corp.example>", "hub", "ordinary", Alice, Friend),
			sub("<fw.5@corp.example>", "hub", "forwarded-ndr", Alice, Nobody),
			sub("<ack.6@outside.example>", "outside", "auto-reply", Helpdesk, Bob),
		},
		queued: map[string]map[string]string{"hub": {"F0000000001": "hold"}, "outside": {}},
		sinks: map[int]sinkInfo{
			41785: {name: "mailstore." + HubDomain, msgs: []smtpsink.Message{{To: []string{Alice}}, {To: []string{Quarantine}}}},
			33775: {name: "mailstore." + OutsideDomain, msgs: []smtpsink.Message{{To: []string{Friend}}}},
		},
		ports:   map[int]string{36157: "outside", 25000: "hub"},
		outside: newDirectory(OutsideDomain, []string{"carol", "friend"}, NewBudget(1)),
	}
	l := buildLedger(in)
	for _, p := range l.Problems {
		t.Error(p)
	}
	want := map[string]map[Fate]int{
		"forwarded-ndr": {Bounced: 1, Quarantined: 1, Held: 1},
		"ndr":           {Delivered: 1},
		"ordinary":      {Delivered: 1},
		"auto-reply":    {Discarded: 1},
	}
	for kind, fates := range want {
		for f, n := range fates {
			if got := l.Count(kind, f); got != n {
				t.Errorf("%s %s: %d, want %d", kind, f, got, n)
			}
		}
	}
	if l.Made("") != 6 || l.NDRs["hub"] != 1 {
		t.Errorf("made %d copies, %d hub NDRs; want 6 and 1", l.Made(""), l.NDRs["hub"])
	}
	for _, c := range l.Copies {
		if c.MessageID == "<ord.4@corp.example>" && strings.Join(c.Path, " ") != "hub:E0000000001 outside:924DC98C5B2" {
			t.Errorf("ordinary message's path %v", c.Path)
		}
	}
}

func TestBudget(t *testing.T) {
	b := NewBudget(3)
	for i := 0; i < 3; i++ {
		if !b.Take(StepForward) {
			t.Fatalf("step %d refused", i)
		}
	}
	if b.Take(StepNDR) {
		t.Fatal("a fourth step was allowed")
	}
	select {
	case <-b.Exhausted():
	default:
		t.Fatal("Exhausted not closed")
	}
	if b.Used() != 3 || b.Spent()[StepForward] != 3 {
		t.Fatalf("used %d, spent %v", b.Used(), b.Spent())
	}
}

func TestFirstTextOfAReport(t *testing.T) {
	raw := "From: MAILER-DAEMON\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n" +
		"--B\r\nContent-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		"This is the mail system at host hub.corp.example.=0A\r\nI'm sorry\r\n" +
		"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; hub\r\n--B--\r\n"
	got := firstText([]byte(raw))
	if !strings.Contains(got, "This is the mail system at host hub.corp.example.") || strings.Contains(got, "Reporting-MTA") {
		t.Fatalf("firstText: %q", got)
	}
}

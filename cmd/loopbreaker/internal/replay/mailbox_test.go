package replay

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testMsg is one message of a test mailbox: its header fields (top first),
// body and time.
type testMsg struct {
	fields [][2]string
	body   string
	at     time.Time
	from   string // envelope sender for the mbox From line
}

func (m testMsg) bytes() []byte {
	var b strings.Builder
	for _, f := range m.fields {
		b.WriteString(f[0] + ": " + f[1] + "\n")
	}
	b.WriteString("\n")
	b.WriteString(m.body)
	return []byte(b.String())
}

const (
	alice  = "alice@corp.example"
	typo   = "alcie@outside.example" // the mistyped forwarding address
	friend = "friend@outside.example"
)

var stormStart = time.Date(2026, 3, 3, 9, 0, 0, 0, time.UTC)

// forwardedNDR imitates Outlook's forward of an Exchange-style non-delivery
// report: "FW: Undeliverable: ...", the report quoted inline under
// Outlook's "-----Original Message-----" block, with the returned
// message's header (each round a report about a different message, as
// when a rule forwards NDRs about several of the owner's mails).
func forwardedNDR(n int, at time.Time, inbound bool) testMsg {
	date := at.Format(time.RFC1123Z)
	f := [][2]string{}
	if inbound {
		f = append(f,
			[2]string{"Return-Path", "<" + alice + ">"},
			[2]string{"X-Original-To", typo},
			[2]string{"Delivered-To", typo},
		)
	}
	f = append(f,
		[2]string{"Received", fmt.Sprintf("from mail.corp.example (mail.corp.example [192.0.2.10])\n\tby mx.outside.example (Postfix) with ESMTPS id 4Q%05dX\n\tfor <%s>; %s", n, typo, date)},
		[2]string{"From", "Alice Example <" + alice + ">"},
		[2]string{"To", typo},
		[2]string{"Subject", fmt.Sprintf("FW: Undeliverable: Quarterly figures %d", n)},
		[2]string{"Date", date},
		[2]string{"Message-ID", fmt.Sprintf("<fw-%d.%d@corp.example>", n, at.Unix())},
		[2]string{"MIME-Version", "1.0"},
		[2]string{"Content-Type", "text/plain; charset=\"us-ascii\""},
		[2]string{"X-MS-Exchange-Inbox-Rules-Loop", alice},
	)
	body := fmt.Sprintf(`

-----Original Message-----
From: Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@corp.example>
Sent: %s
To: Alice Example <%s>
Subject: Undeliverable: Quarterly figures %d

Delivery has failed to these recipients or groups:

%s
The email address you entered couldn't be found. Please check the recipient's email address and try to resend the message. If the problem continues, please contact your helpdesk.

Diagnostic information for administrators:

Generating server: mail.corp.example

%s
Remote Server returned '550 5.1.1 <%s>: Recipient address rejected: User unknown in virtual mailbox table'

Original message headers:

Received: from PC17.corp.example (192.0.2.77) by mail.corp.example
 (192.0.2.10) with Microsoft SMTP Server id 15.1.2507.6; %s
From: Alice Example <%s>
To: <%s>
Subject: Quarterly figures %d
Date: %s
Message-ID: <orig-%d@corp.example>
`, at.Format("Monday, January 2, 2006 3:04 PM"), alice, n, typo, typo, typo, date, alice, typo, n, date, n)
	return testMsg{fields: f, body: strings.ReplaceAll(body, "\r\n", "\n"), at: at, from: alice}
}

// ordinaryMsg is a plain message from alice, with a body line that starts
// with "From " (which an mbox escapes) and a ">From " one (which mboxrd
// escapes once more).
func ordinaryMsg(n int, at time.Time, rcpt string, inbound bool) testMsg {
	date := at.Format(time.RFC1123Z)
	f := [][2]string{}
	if inbound {
		f = append(f,
			[2]string{"Return-Path", "<" + alice + ">"},
			[2]string{"X-Original-To", rcpt},
			[2]string{"Delivered-To", rcpt},
		)
	}
	f = append(f,
		[2]string{"Received", fmt.Sprintf("from mail.corp.example (mail.corp.example [192.0.2.10])\n\tby mx.outside.example (Postfix) with ESMTPS id 4R%05dY\n\tfor <%s>; %s", n, rcpt, date)},
		[2]string{"From", "Alice Example <" + alice + ">"},
		[2]string{"To", rcpt},
		[2]string{"Subject", fmt.Sprintf("lunch on friday (%d)", n)},
		[2]string{"Date", date},
		[2]string{"Message-ID", fmt.Sprintf("<lunch-%d@corp.example>", n)},
	)
	body := "Hi,\n\nshall we meet at noon?\nFrom my side friday works best.\n>From the menu I'd take the soup.\n\nAlice\n"
	return testMsg{fields: f, body: body, at: at, from: alice}
}

// stormMailbox is alice's forwarding storm: 40 forwarded NDRs every
// spacing, and 5 ordinary messages of hers among them (one to the same
// mistyped address, during the storm).
func stormMailbox(spacing time.Duration, inbound bool) []testMsg {
	var msgs []testMsg
	for i := 0; i < 40; i++ {
		at := stormStart.Add(time.Duration(i) * spacing)
		msgs = append(msgs, forwardedNDR(i+1, at, inbound))
		if i%8 == 3 {
			rcpt := friend
			if i == 27 {
				rcpt = typo
			}
			msgs = append(msgs, ordinaryMsg(i, at.Add(spacing/2), rcpt, inbound))
		}
	}
	return msgs
}

// mboxFromLine is the "From " line of an mbox entry (asctime date).
func mboxFromLine(m testMsg) string {
	return "From " + m.from + " " + m.at.UTC().Format("Mon Jan _2 15:04:05 2006") + "\n"
}

// writeMbox writes msgs as an mbox: mboxrd escapes every ">*From " line
// with one more ">", mboxo only "From " lines.
func writeMbox(t testing.TB, path string, msgs []testMsg, rd bool) {
	t.Helper()
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString(mboxFromLine(m))
		for _, line := range strings.SplitAfter(string(m.bytes()), "\n") {
			trimmed := strings.TrimLeft(line, ">")
			if strings.HasPrefix(trimmed, "From ") && (rd || trimmed == line) {
				line = ">" + line
			}
			b.WriteString(line)
		}
		b.WriteString("\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeMaildir writes msgs into a Maildir (cur/ and new/), with a
// Dovecot index beside them and a half-delivered message in tmp/, neither
// of which is a message to replay.
func writeMaildir(t testing.TB, dir string, msgs []testMsg) {
	t.Helper()
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i, m := range msgs {
		sub, name := "cur", fmt.Sprintf("%d.M%dP%d.host,S=%d:2,S", m.at.Unix(), i, 100+i, len(m.bytes()))
		if i%3 == 0 {
			sub, name = "new", fmt.Sprintf("%d.M%dP%d.host", m.at.Unix(), i, 100+i)
		}
		if err := os.WriteFile(filepath.Join(dir, sub, name), m.bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "dovecot.index.cache"), []byte{0, 1, 2, 3}, 0o600)
	os.WriteFile(filepath.Join(dir, "dovecot-uidlist"), []byte("3 V1 N1\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "tmp", "1.M1.host"), []byte("Subject: half"), 0o600)
}

// writeEmlTree writes msgs as .eml files spread over nested folders, in
// an order unrelated to their times.
func writeEmlTree(t testing.TB, dir string, msgs []testMsg) {
	t.Helper()
	for i, m := range msgs {
		sub := filepath.Join(dir, fmt.Sprintf("folder%d", i%3), fmt.Sprintf("sub%d", i%2))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("%03d.eml", (i*37)%len(msgs)+1000*(i%2))
		if err := os.WriteFile(filepath.Join(sub, name), m.bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

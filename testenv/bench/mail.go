// Package bench measures what loopbreaker costs, side by side with a
// pass-through milter and with no milter at all, in one run (issue 6).
//
// `make bench` runs cmd/lbbench, which prints four tables: the bare milter
// protocol (the go-milter client driving both milters), Postfix end to end
// (smtp-source → Postfix → smtp-sink), the state at 1k, 100k and 1M keys,
// and the containment of a storm fed by 16 sessions at once. Speed is only
// ever reported as ratios of rounds run alternately in the same run, never
// asserted in a test: see docs/benchmarks.md.
package bench

import (
	"bytes"
	"fmt"
	"strings"
)

// Domains of the generated mail. The daemon runs with -local-domains
// LocalDomain -quarantine-mailbox QuarantineMailbox.
const (
	LocalDomain       = "corp.example"
	QuarantineMailbox = "quarantine@corp.example"
	// StormSubject is what a mailbox rule forwarding an NDR produces.
	StormSubject = "FW: Mail delivery failed: returning message to sender"
)

// Mail is one message as an MTA hands it to a milter.
type Mail struct {
	Sender     string
	Recipients []string
	Header     [][2]string
	Body       []byte
}

// Bytes renders the message with CRLF line ends.
func (m *Mail) Bytes() []byte {
	var b bytes.Buffer
	for _, h := range m.Header {
		b.WriteString(h[0])
		b.WriteString(": ")
		b.WriteString(h[1])
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	b.Write(m.Body)
	return b.Bytes()
}

var subjects = []string{
	"Quarterly figures, draft %d",
	"Re: lunch on Thursday? (%d)",
	"Invoice %d for October",
	"AW: Projektplan Version %d",
	"Meeting notes %d",
	"Fwd: slides for the customer visit (%d)",
	"=?UTF-8?Q?R=C3=A9union_d=27=C3=A9quipe_n=C2=B0?= %d",
}

var paragraph = "Hello,\r\n\r\nthank you for the figures. I went through them with the team this\r\n" +
	"morning and we have a few questions about the second table, mainly the\r\n" +
	"numbers for the northern region, which look higher than last quarter.\r\n" +
	"Could you send the underlying sheet before Friday? We would like to\r\n" +
	"discuss it in the meeting on Monday.\r\n\r\n"

// ordinaryBody is about 2.5 KB of plain text, like a short business mail.
var ordinaryBody = []byte(strings.Repeat(paragraph, 6) + "Best regards,\r\nAlice\r\n-- \r\nAlice Example, Corp Example Ltd.\r\n")

// Ordinary is the i-th message of varied ordinary mail: senders, recipients
// and subjects vary, inbound and outbound alternate.
func Ordinary(i int) *Mail {
	var from, to string
	if i%2 == 0 {
		from = fmt.Sprintf("user%d@%s", i%997, LocalDomain)
		to = fmt.Sprintf("contact%d@partner%d.example", i%1009, i%7)
	} else {
		from = fmt.Sprintf("contact%d@partner%d.example", i%1009, i%7)
		to = fmt.Sprintf("user%d@%s", i%997, LocalDomain)
	}
	subject := fmt.Sprintf(subjects[i%len(subjects)], i)
	return &Mail{
		Sender:     from,
		Recipients: []string{to},
		Header: [][2]string{
			{"Received", fmt.Sprintf("from mail.partner.example (mail.partner.example [192.0.2.%d])\r\n\tby mx.corp.example (Postfix) with ESMTPS id 4Q%06d\r\n\tfor <%s>; Mon, 23 Nov 2026 10:00:00 +0100", i%250+1, i%1000000, to)},
			{"Received", "from [10.1.2.3] (unknown [10.1.2.3])\r\n\tby mail.partner.example (Postfix) with ESMTPSA id 4Q1234\r\n\tMon, 23 Nov 2026 09:59:59 +0100"},
			{"DKIM-Signature", "v=1; a=rsa-sha256; c=relaxed/relaxed; d=partner.example; s=mail;\r\n\tt=1795424399; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n\th=From:To:Subject:Date; b=dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZSwganVzdCBieXRlcw=="},
			{"Message-ID", fmt.Sprintf("<%d.%d@mail.example>", i, i*7919)},
			{"Date", "Mon, 23 Nov 2026 09:59:58 +0100"},
			{"From", "Example Sender <" + from + ">"},
			{"To", "<" + to + ">"},
			{"Subject", subject},
			{"MIME-Version", "1.0"},
			{"Content-Type", "text/plain; charset=utf-8; format=flowed"},
			{"Content-Transfer-Encoding", "8bit"},
			{"User-Agent", "Mozilla/5.0 Thunderbird/115.0"},
		},
		Body: ordinaryBody,
	}
}

// StormRecipient is the mistyped outside address of the forwarding rule.
const StormRecipient = "alice.example@outside-typo.example"

// Storm is the i-th message of a forwarding-rule storm of sender: a
// forwarded NDR to an outside address, the default policy's forward-storm
// rule (25 per 15 minutes, then redirect to the quarantine mailbox).
func Storm(sender string, i int) *Mail {
	body := "\r\n\r\n-----Original Message-----\r\nFrom: Mail Delivery System <Mailer-Daemon@outside-typo.example>\r\n" +
		"Sent: Monday, November 23, 2026 10:00 AM\r\nTo: " + sender + "\r\nSubject: Mail delivery failed: returning message to sender\r\n\r\n" +
		"This message was created automatically by mail delivery software.\r\n\r\n" +
		"A message that you sent could not be delivered to one or more of its\r\nrecipients. This is a permanent error. The following address(es) failed:\r\n\r\n  " +
		StormRecipient + "\r\n    host mx.outside-typo.example [198.51.100.7]\r\n    SMTP error from remote mail server after RCPT TO:<" + StormRecipient + ">:\r\n    550 5.1.1 User unknown\r\n"
	return &Mail{
		Sender:     sender,
		Recipients: []string{StormRecipient},
		Header: [][2]string{
			{"Received", fmt.Sprintf("from exch01.corp.example (exch01.corp.example [10.0.0.5])\r\n\tby mx.corp.example (Postfix) with ESMTP id 4S%06d\r\n\tfor <%s>; Mon, 23 Nov 2026 10:00:01 +0100", i%1000000, StormRecipient)},
			{"From", sender},
			{"To", StormRecipient},
			{"Subject", StormSubject},
			{"Message-ID", fmt.Sprintf("<fw-%d-%s>", i, sender)},
			{"Date", "Mon, 23 Nov 2026 10:00:01 +0100"},
			{"MIME-Version", "1.0"},
			{"Content-Type", "text/plain; charset=us-ascii"},
		},
		Body: []byte(body),
	}
}

// TextBody returns about n bytes of plain text in CRLF lines.
func TextBody(n int) []byte {
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(paragraph)
	}
	b.Truncate(n)
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

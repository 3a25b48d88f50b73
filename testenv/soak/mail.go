package soak

import (
	"fmt"
	"strings"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv"
)

// SeqHeader carries each soak message's sequence number to the sink.
const SeqHeader = "X-Soak-Seq"

// Kind is what a soak message is, and so where it must end.
type Kind int

const (
	// Ordinary mail, inbound and outbound: must be delivered, every one.
	Ordinary Kind = iota
	// Forward is a forwarding-rule storm (forwarded NDRs from one local
	// sender to a mistyped outside address): delivered up to the limit,
	// then redirected to the quarantine mailbox.
	Forward
	// Bounce is an NDR storm to one local recipient: delivered up to the
	// limit, then rejected.
	Bounce
	// Hops is a message with 30 Received fields: held (hop-ceiling).
	Hops
	numKinds
)

func (k Kind) String() string {
	return [...]string{"ordinary", "forward-storm", "bounce-storm", "hop-ceiling"}[k]
}

const (
	localDomain = "corp.example"
	// Quarantine is the quarantine mailbox the daemon redirects to.
	Quarantine = "quarantine@" + localDomain
	typo       = "alice.example@outside-typo.example"
	// StormPeriod is how long one storm sender (or bounced recipient)
	// lasts before the next one takes over.
	StormPeriod = 2 * time.Minute
)

// kindOf spreads the kinds over the sequence: 70 % ordinary, 15 %
// forwarded NDRs, 14 % bounces, 1 % hop-ceiling.
func kindOf(seq int) Kind {
	switch r := seq % 100; {
	case r < 70:
		return Ordinary
	case r < 85:
		return Forward
	case r < 99:
		return Bounce
	default:
		return Hops
	}
}

const paragraph = "Hello,\r\n\r\nthanks for the report. We went through the figures this\r\n" +
	"morning and we have a few questions about the second table, mainly the\r\n" +
	"numbers for the northern region, which look higher than last quarter.\r\n\r\n"

var ordinaryBody = strings.Repeat(paragraph, 5) + "Best regards,\r\nAlice\r\n"

// mail is one message to send.
type mail struct {
	seq  int
	kind Kind
	from string
	to   string
	data []byte
}

func header(b *strings.Builder, k, v string) { b.WriteString(k + ": " + v + "\r\n") }

// newMail builds message seq; storm is the index of the storm period it is
// sent in (which storm sender or bounced recipient it belongs to).
func newMail(seq, storm int) *mail {
	m := &mail{seq: seq, kind: kindOf(seq)}
	var b strings.Builder
	date := time.Now().UTC().Format(time.RFC1123Z)
	switch m.kind {
	case Ordinary:
		if seq%2 == 0 {
			m.from = fmt.Sprintf("user%d@%s", seq%997, localDomain)
			m.to = fmt.Sprintf("contact%d@partner%d.example", seq%1009, seq%7)
		} else {
			m.from = fmt.Sprintf("contact%d@partner%d.example", seq%1009, seq%7)
			m.to = fmt.Sprintf("user%d@%s", seq%997, localDomain)
		}
		header(&b, "Received", fmt.Sprintf("from mail.partner.example (mail.partner.example [192.0.2.%d])\r\n\tby mx.corp.example (Postfix) with ESMTPS id 4Q%06d; %s", seq%250+1, seq%1000000, date))
		header(&b, "From", "Example Sender <"+m.from+">")
		header(&b, "To", "<"+m.to+">")
		header(&b, "Subject", fmt.Sprintf("Quarterly figures, question %d", seq))
		header(&b, "Message-ID", fmt.Sprintf("<soak-%d@mail.example>", seq))
		header(&b, "Date", date)
		header(&b, "MIME-Version", "1.0")
		header(&b, "Content-Type", "text/plain; charset=utf-8")
		header(&b, SeqHeader, fmt.Sprint(seq))
		b.WriteString("\r\n" + ordinaryBody)
	case Forward:
		m.from = fmt.Sprintf("storm%d@%s", storm, localDomain)
		m.to = typo
		header(&b, "From", m.from)
		header(&b, "To", m.to)
		header(&b, "Subject", "FW: Mail delivery failed: returning message to sender")
		header(&b, "Message-ID", fmt.Sprintf("<fw-%d@%s>", seq, localDomain))
		header(&b, "Date", date)
		header(&b, SeqHeader, fmt.Sprint(seq))
		b.WriteString("\r\n\r\n-----Original Message-----\r\nFrom: Mail Delivery System <Mailer-Daemon@outside-typo.example>\r\n" +
			"Sent: Monday, November 23, 2026 10:00 AM\r\nTo: " + m.from + "\r\nSubject: Mail delivery failed: returning message to sender\r\n\r\n" +
			"This message was created automatically by mail delivery software.\r\n\r\n" +
			"A message that you sent could not be delivered to one or more of its\r\nrecipients. This is a permanent error.\r\n\r\n  " +
			typo + "\r\n    550 5.1.1 User unknown\r\n")
	case Bounce:
		m.from = "" // null sender
		m.to = fmt.Sprintf("victim%d@%s", storm, localDomain)
		boundary := fmt.Sprintf("B%d.soak/mx.partner.example", seq)
		header(&b, "From", "MAILER-DAEMON@mx.partner.example (Mail Delivery System)")
		header(&b, "To", m.to)
		header(&b, "Subject", "Undelivered Mail Returned to Sender")
		header(&b, "Auto-Submitted", "auto-replied")
		header(&b, "Message-ID", fmt.Sprintf("<ndr-%d@mx.partner.example>", seq))
		header(&b, "Date", date)
		header(&b, "MIME-Version", "1.0")
		header(&b, "Content-Type", `multipart/report; report-type=delivery-status; boundary="`+boundary+`"`)
		header(&b, SeqHeader, fmt.Sprint(seq))
		b.WriteString("\r\n" + testenv.PartnerNDRBody(boundary, m.to, seq, localDomain))
	case Hops:
		m.from = fmt.Sprintf("looper%d@partner.example", seq%13)
		m.to = fmt.Sprintf("user%d@%s", seq%997, localDomain)
		for i := 0; i < 30; i++ {
			header(&b, "Received", fmt.Sprintf("from hop%d.example by hop%d.example with SMTP id %d; %s", i, i+1, seq, date))
		}
		header(&b, "From", m.from)
		header(&b, "To", m.to)
		header(&b, "Subject", "hello again")
		header(&b, "Message-ID", fmt.Sprintf("<hops-%d@partner.example>", seq))
		header(&b, "Date", date)
		header(&b, SeqHeader, fmt.Sprint(seq))
		b.WriteString("\r\nround and round\r\n")
	}
	m.data = []byte(b.String())
	return m
}

package scenario

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv/smtpsink"
)

// RedirectStorm is the fourth scenario (issue 14): alice's mailbox rule
// resends every message delivered to her, unchanged, to the mistyped
// nobody@outside.example, which the outside refuses at RCPT TO. The hub's
// NDR comes back to her and is resent again. RedirectVariant says which
// envelope the resent copies carry.
const RedirectStorm = "redirect-storm"

// StepServerNDR is the budget step of an NDR alice's mailbox server writes
// because the hub refused what her rule sent.
const StepServerNDR = "server-ndr"

// RedirectVariant is the envelope of a redirect-storm's resent copies.
type RedirectVariant string

// The variants.
const (
	// RedirectResent: alice is the envelope sender and the message gets
	// Resent-From/To/Date/Message-ID (RFC 5322 3.6.6), as a client's
	// "redirect" or "resend" does.
	RedirectResent RedirectVariant = "resent"
	// RedirectSRS: the envelope sender is alice's address rewritten by
	// the Sender Rewriting Scheme, as a forwarder makes it
	// (SRS0=HASH=TT=corp.example=alice@corp.example); the NDR goes to that
	// address, which the forwarder turns back into alice's.
	RedirectSRS RedirectVariant = "srs"
	// RedirectNull: the null envelope sender, as Sieve redirect and
	// .forward keep it for a report. The NDR of a null-sender message
	// cannot go back to a sender (RFC 5321 4.5.5); this variant's hub
	// sends it to the postmaster (notify_classes = 2bounce), and the
	// postmaster is alice, so her rule resends the postmaster's copy: the
	// storm is one null-sender report after another leaving the site.
	RedirectNull RedirectVariant = "null"
)

// RedirectVariants lists the variants.
var RedirectVariants = []RedirectVariant{RedirectResent, RedirectSRS, RedirectNull}

// SRSAddress is what a forwarder at corp.example makes of user's address
// (a fixed hash and day stamp: within one day a forwarder's SRS address for
// one sender does not change).
func SRSAddress(user string) string {
	local, domain, _ := strings.Cut(user, "@")
	return fmt.Sprintf("SRS0=x7Qa=TK=%s=%s@%s", domain, local, HubDomain)
}

// AddRedirectRule gives user a rule that resends every delivered message,
// unchanged, to target through the MTA named via, with the envelope the
// variant says. What reaches the SRS address counts as delivered to user
// (the forwarder reverses it).
//
// The agent also stands for user's mailbox server: when the hub refuses a
// resent copy with a permanent error, the server writes an NDR to user
// ("Undeliverable: ..."), as Exchange does for a failed redirect, and the
// rule resends that in turn. A policy that rejects what local mailboxes
// send keeps the loop running that way, one round per refusal.
func (a *Agents) AddRedirectRule(user, target, via string, variant RedirectVariant) {
	name := "redirect:" + user
	act := func(ctx context.Context, m smtpsink.Message) {
		if !a.budget.Take(StepForward) {
			return
		}
		kind := "forward"
		if m.From == "" || strings.HasPrefix(strings.ToLower(m.From), "double-bounce@") {
			kind = "forwarded-ndr" // a report, the hub's or the postmaster's copy
		}
		from := user
		data := m.Data
		switch variant {
		case RedirectResent:
			data = prependHeader(m.Data, [][2]string{
				{"Resent-From", user},
				{"Resent-To", target},
				{"Resent-Date", time.Now().UTC().Format(time.RFC1123Z)},
				{"Resent-Message-ID", newMessageID("resent", HubDomain)},
			})
		case RedirectSRS:
			from = SRSAddress(user)
		case RedirectNull:
			from = ""
		}
		err := a.submit(ctx, name, via, kind, from, []string{target}, data)
		if err != nil && strings.Contains(err.Error(), "55") && a.budget.Take(StepServerNDR) {
			_ = a.submit(ctx, "mailbox-server:"+user, via, "ndr", "", []string{user}, serverNDR(user, target, m, err))
		}
	}
	a.add(&agent{name: name, mailbox: user, act: act})
	if variant == RedirectSRS {
		a.add(&agent{name: name, mailbox: SRSAddress(user), act: act})
	}
}

// prependHeader puts fields on top of a raw message, as a resend does.
func prependHeader(raw []byte, fields [][2]string) []byte {
	var b bytes.Buffer
	for _, f := range fields {
		fmt.Fprintf(&b, "%s: %s\r\n", f[0], f[1])
	}
	b.Write(raw)
	return b.Bytes()
}

// serverNDR is the NDR a mailbox server writes to user when its relay
// refused a message the user's rule sent.
func serverNDR(user, target string, m smtpsink.Message, refusal error) []byte {
	boundary := fmt.Sprintf("ndr-%d", time.Now().UnixNano())
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Mail Delivery System <MAILER-DAEMON@mailbox.%s>\r\n", HubDomain)
	fmt.Fprintf(&b, "To: %s\r\nSubject: Undeliverable: %s\r\n", user, headerOr(m, "Subject", ""))
	fmt.Fprintf(&b, "Date: %s\r\nMessage-ID: %s\r\n", time.Now().UTC().Format(time.RFC1123Z), newMessageID("ndr", "mailbox."+HubDomain))
	b.WriteString("Auto-Submitted: auto-replied (failure)\r\nMIME-Version: 1.0\r\n")
	fmt.Fprintf(&b, "Content-Type: multipart/report; report-type=delivery-status; boundary=%q\r\n\r\n", boundary)
	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain\r\n\r\nDelivery has failed to these recipients or groups:\r\n\r\n%s\r\nThe server refused the message: %s\r\n\r\n", boundary, target, refusal)
	fmt.Fprintf(&b, "--%s\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mailbox.%s\r\n\r\nFinal-Recipient: rfc822; %s\r\nAction: failed\r\nStatus: 5.7.1\r\n\r\n", boundary, HubDomain, target)
	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/rfc822-headers\r\n\r\n", boundary)
	if i := bytes.Index(m.Data, []byte("\r\n\r\n")); i >= 0 {
		b.Write(m.Data[:i+2])
	}
	fmt.Fprintf(&b, "\r\n--%s--\r\n", boundary)
	return b.Bytes()
}

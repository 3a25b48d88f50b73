package classify

import (
	"strings"

	"github.com/loopbreaker/loopbreaker/loopdetect/address"
)

// site is what the caller knows of the site the message passes through:
// its local domains (Options.LocalDomains) and the envelope recipients.
// Only the top-level message has one.
type site struct {
	local []string
	rcpts []string
}

// outside returns the first envelope recipient outside the local domains,
// or "" when there is none or the local domains are not known.
func (s *site) outside() string {
	if len(s.local) == 0 {
		return ""
	}
	for _, r := range s.rcpts {
		if p := address.Path(r); p != "" && !address.InDomains(p, s.local) {
			return p
		}
	}
	return ""
}

// redirectSign looks, on a message that is itself a report, for the signs
// that a mailbox passed it on unchanged (a redirect or resend: Outlook's
// and Thunderbird's Redirect, Sieve redirect, procmail "!", .forward, a
// virtual alias to an outside address, Gmail auto-forwarding). Such a
// report keeps the MTA's From, Subject and multipart/report; what changes
// is the envelope sender and a few header fields. It returns the sign
// found, or a zero Signal. See README.md for each sign and the false
// positive it guards against.
func (a *analysis) redirectSign(e *evidence) Signal {
	if a.depth != 0 {
		return Signal{}
	}
	s := a.env
	if s.known && !s.null {
		// The reverse-path a forwarder or a signing MTA rewrote: a
		// report's own reverse-path is null (RFC 3464 2, RFC 5321
		// 4.5.5), and is never rewritten by SRS or signed by BATV.
		if orig, form := address.Unwrap(s.addr); form != "" && !isDaemonAddress(orig) {
			switch form {
			case address.FormSRS0, address.FormSRS1:
				return Signal{Name: SignalSRSSender, Where: "envelope", Value: s.addr}
			case address.FormBATV:
				return Signal{Name: SignalBATVSender, Where: "envelope", Value: s.addr}
			default:
				return Signal{Name: SignalForwarderSender, Where: "envelope", Value: s.addr}
			}
		}
		if a.ruleHeader != "" {
			// Exchange's redirect rule: the mailbox's address as the
			// reverse-path, X-MS-Exchange-Inbox-Rules-Loop naming it.
			name, val, _ := strings.Cut(a.ruleHeader, ": ")
			return Signal{Name: SignalInboxRule, Where: "header:" + name, Value: val}
		}
		person := !isDaemonAddress(s.addr) && !address.IsListRole(s.addr)
		if person && address.InDomains(s.addr, a.site.local) {
			return Signal{Name: SignalLocalSender, Where: "envelope", Value: s.addr}
		}
		if person && a.resent != "" && a.resentPerson() {
			// A person resending (the reverse-path is theirs, not a
			// list's bounce address): a report that reached them
			// through a list still carries the list's fields.
			name, val, _ := strings.Cut(a.resent, ": ")
			return Signal{Name: SignalRedirected, Where: "header:" + name, Value: val}
		}
		if person {
			for _, rp := range a.returnPaths {
				if rp == "" {
					// A Return-Path of <> while the reverse-path is a
					// mailbox (in a stored file, a second one below the
					// first): the report was delivered once with its
					// null sender and is sent on by that mailbox.
					return Signal{Name: SignalEarlierNullSender, Where: "header:Return-Path", Value: "<>"}
				}
			}
		}
		if person && a.senderField != "" && strings.EqualFold(a.senderField, s.addr) {
			// Outlook's and Exchange's redirect on behalf: From stays the
			// report sender, Sender names the mailbox that is also the
			// reverse-path. (A list's Sender is its own address, the
			// reverse-path its bounce address.)
			return Signal{Name: SignalRedirected, Where: "header:Sender", Value: a.senderField}
		}
		if person && a.fwdHeader != "" {
			name, val, _ := strings.Cut(a.fwdHeader, ": ")
			return Signal{Name: SignalForwardingHeader, Where: "header:" + name, Value: val}
		}
		if person {
			low := strings.ToLower(s.addr)
			for _, d := range a.deliveredTo {
				if d == low {
					// Delivered to this mailbox, then sent on under its
					// name: procmail "!", a client's resend.
					return Signal{Name: SignalSenderWasRecipient, Where: "header:Delivered-To", Value: d}
				}
			}
		}
	}
	if !s.known && a.resent != "" && !a.list && a.resentAddr != "" && a.resentPerson() {
		// A stored message: a person's Resent-From is the resend.
		name, val, _ := strings.Cut(a.resent, ": ")
		return Signal{Name: SignalRedirected, Where: "header:" + name, Value: val}
	}
	if out := a.site.outside(); out != "" {
		// Going out again to an outside recipient, whatever the
		// reverse-path (a Sieve or .forward redirect keeps it null),
		// with a mark that a local mailbox handled it first.
		switch {
		case a.resent != "" && !a.list:
			name, val, _ := strings.Cut(a.resent, ": ")
			return Signal{Name: SignalRedirected, Where: "header:" + name, Value: val}
		case a.fwdHeader != "":
			name, val, _ := strings.Cut(a.fwdHeader, ": ")
			return Signal{Name: SignalForwardingHeader, Where: "header:" + name, Value: val}
		case a.ruleHeader != "":
			name, val, _ := strings.Cut(a.ruleHeader, ": ")
			return Signal{Name: SignalInboxRule, Where: "header:" + name, Value: val}
		}
		for _, d := range a.deliveredTo {
			if address.InDomains(d, a.site.local) {
				// Delivered-To is written at final delivery (Postfix
				// local(8), qmail, Dovecot LDA with Postfix's pipe D
				// flag); a message carrying one for a local mailbox
				// already arrived and is now leaving.
				return Signal{Name: SignalForwardingHeader, Where: "header:Delivered-To", Value: d}
			}
		}
	}
	return Signal{}
}

// resentPerson reports that the Resent-From or Resent-Sender names neither
// a daemon nor a mailing list's administrative address (SmartList and
// Mailman resend reports to the list owner as part of bounce handling).
func (a *analysis) resentPerson() bool {
	return a.resentAddr == "" || !isDaemonAddress(a.resentAddr) && !address.IsListRole(a.resentAddr)
}

// forwarder returns the mailbox that passed a report on, lower-cased, for
// Verdict.ForwardedBy: the mailbox a rewritten reverse-path stands for
// (SRS, BATV, Gmail), else the reverse-path itself; with the null or an
// unknown reverse-path, the Resent-From or Resent-Sender, else the mailbox a
// Delivered-To names (a local one first), else the one the Exchange rule
// field names.
func (a *analysis) forwarder() string {
	s := a.env
	if s.known && !s.null {
		if orig, form := address.Unwrap(s.addr); form != "" && orig != "" {
			return orig
		}
		return strings.ToLower(s.addr)
	}
	if a.resentAddr != "" {
		return a.resentAddr
	}
	for _, d := range a.deliveredTo {
		if address.InDomains(d, a.site.local) {
			return d
		}
	}
	if len(a.deliveredTo) > 0 {
		return a.deliveredTo[0]
	}
	if a.ruleHeader != "" {
		_, val, _ := strings.Cut(a.ruleHeader, ": ")
		return address.Extract(val)
	}
	return ""
}

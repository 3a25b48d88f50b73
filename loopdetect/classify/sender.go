package classify

import (
	"strings"

	"github.com/loopbreaker/loopbreaker/loopdetect/address"
)

// sender is what is known of a message's envelope sender.
type sender struct {
	known bool
	null  bool
	addr  string
}

// senderFromEnvelope reads the reverse-path of the SMTP transaction.
func senderFromEnvelope(e *Envelope) sender {
	if e.SenderUnknown {
		return sender{}
	}
	s := address.Path(e.Sender)
	return sender{known: true, null: s == "", addr: s}
}

// senderFromReturnPath reads the envelope sender an MDA recorded in
// Return-Path (RFC 5321 4.4); without one the sender is unknown.
func senderFromReturnPath(fs fields) sender {
	for i := range fs {
		if fs[i].key == "Return-Path" {
			s := address.Path(fs[i].value)
			return sender{known: true, null: s == "", addr: s}
		}
	}
	return sender{}
}

// isDaemonAddress reports whether an address or From value names a report
// sender: a daemon local part (in any address of the value, so that
// "Mail Delivery System [mailto:MAILER-DAEMON@x]" counts), Exchange's
// MicrosoftExchange<hex> system mailbox, or a daemon display name.
func isDaemonAddress(v string) bool {
	if v == "" {
		return false
	}
	low := strings.ToLower(strings.TrimSpace(v))
	for _, local := range address.LocalParts(low) {
		if daemonLocalParts[local] {
			return true
		}
		if strings.HasPrefix(local, "microsoftexchange") && len(local) > len("microsoftexchange")+8 {
			return true
		}
	}
	name := address.DisplayName(low)
	if daemonLocalParts[name] {
		return true // a bare MAILER-DAEMON
	}
	for _, d := range daemonNames {
		if name == d {
			return true
		}
	}
	// amavis: "Content-filter at example.com".
	return strings.HasPrefix(name, "content-filter at ")
}

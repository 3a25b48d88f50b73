package classify

import "strings"

// Kind is what a message is, for counting purposes.
type Kind string

// The kinds a message can have. Exactly one is primary in a [Verdict].
const (
	// KindOrdinary is mail written by a person or an ordinary program.
	KindOrdinary Kind = "ordinary"
	// KindBounce is a delivery status notification or any MTA's
	// non-delivery report (RFC 3464, RFC 3461 4.1), including delay and
	// success notices (see Verdict.DSNAction).
	KindBounce Kind = "bounce"
	// KindForwardedNDR is a bounce that a person or a mailbox rule sent on as
	// new mail: the engine of the forwarding-rule storm.
	KindForwardedNDR Kind = "forwarded-ndr"
	// KindAutoReply is an out-of-office, vacation or other automatic
	// response (RFC 3834).
	KindAutoReply Kind = "auto-reply"
)

// Kinds lists every kind, for validation and documentation.
var Kinds = []Kind{KindOrdinary, KindBounce, KindForwardedNDR, KindAutoReply}

// DSN actions (RFC 3464 2.3.3), normalized.
const (
	DSNFailed    = "failed"
	DSNDelayed   = "delayed"
	DSNDelivered = "delivered"
)

// Verdict is the classifier's answer for one message.
type Verdict struct {
	Kind Kind `json:"kind"`
	// DSNAction is failed, delayed or delivered for bounces when it can be
	// told; empty otherwise.
	DSNAction string `json:"dsn_action,omitempty"`
	// Signals is every piece of evidence that fired, primary or not.
	Signals []Signal `json:"signals"`
	// LoopSigns are the signals that a loop is already running (hop count,
	// X-Loop, forward depth, NDR of an NDR). They are independent of Kind.
	LoopSigns []Signal `json:"loop_signs,omitempty"`
	// Hops is the number of Received header fields (RFC 5321 4.4).
	Hops int `json:"hops"`
	// ForwardDepth is how many forward prefixes the subject carries, along
	// the whole chain ("FW: Undeliverable: FW: x" is 2).
	ForwardDepth int `json:"forward_depth,omitempty"`
	// OriginalMessageID is the Message-ID (RFC 5322 3.6.4, with its angle
	// brackets) of the message an NDR refers to: that of the returned
	// message or header (RFC 3464 2, RFC 6522 text/rfc822-headers) or of the
	// quoted header in the text. Along a chain of reports about reports it
	// is the innermost ordinary message, so that every round of a loop
	// counts against the same key.
	OriginalMessageID string `json:"original_message_id,omitempty"`
	// OriginalRecipient is the recipient the NDR says could not be reached,
	// lower-cased: the Final-Recipient (RFC 3464 2.3.2), else the
	// Original-Recipient, X-Failed-Recipients or the address the text names.
	OriginalRecipient string `json:"original_recipient,omitempty"`
	// ForwardedBy is, for a report that a mailbox passed on unchanged (a
	// redirect or resend, see README.md), that mailbox, lower-cased: what
	// an SRS, BATV or Gmail-forwarding reverse-path stands for, else the
	// reverse-path, else the Resent-From or the Delivered-To mailbox. Empty
	// otherwise (a person's forward is keyed by its sender).
	ForwardedBy string `json:"forwarded_by,omitempty"`
}

// Has reports whether a signal of that name fired.
func (v *Verdict) Has(name string) bool { return hasSignal(v.Signals, name) }

// Explain renders the evidence in one line for logs.
func (v *Verdict) Explain() string {
	var b strings.Builder
	b.WriteString(string(v.Kind))
	for i, s := range v.Signals {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(s.Name)
		if s.Value != "" {
			b.WriteString("=")
			b.WriteString(quoteShort(s.Value))
		}
	}
	return b.String()
}

func quoteShort(s string) string {
	if strings.ContainsAny(s, " \t\"") {
		return `"` + strings.ReplaceAll(s, `"`, `'`) + `"`
	}
	return s
}

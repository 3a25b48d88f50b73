package loopdetect

import (
	"mime"
	"strings"

	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/textproto"
)

// Options tune the classifier. The zero value is usable.
type Options struct {
	// MaxHops is the Received count from which a loop sign is raised.
	// Zero means 25, a little under Postfix's hopcount_limit of 50 so the
	// sign shows before the MTA gives up (RFC 5321 6.3).
	MaxHops int
}

func (o Options) maxHops() int {
	if o.MaxHops > 0 {
		return o.MaxHops
	}
	return 25
}

// Classify returns what msg is and why. It never panics on malformed input
// and never does I/O.
func Classify(msg *Message, opts Options) Verdict {
	v := Verdict{Kind: KindOrdinary}
	h := &msg.Header

	subject := decodeHeader(h.Get("Subject"))
	fwd := parseSubject(subject)
	v.ForwardDepth = fwd.forwards

	// Loop signs, independent of the kind.
	v.Hops = len(h.Values("Received"))
	if v.Hops >= opts.maxHops() {
		v.LoopSigns = append(v.LoopSigns, Signal{Name: "hop-count", Where: "header:Received", Value: itoa(v.Hops)})
	}
	if fwd.forwards >= 2 {
		v.LoopSigns = append(v.LoopSigns, Signal{Name: "forward-depth", Where: "header:Subject", Value: itoa(fwd.forwards)})
	}

	bounce := bounceEvidence(msg, &v)
	switch {
	case fwd.forwards > 0 && fwd.ndrPhrase != "" && msg.Envelope.Sender != "":
		// Forwarded by a person or a rule: the sender is a mailbox, not the
		// null sender, and the subject is a forward of an NDR subject.
		v.add("subject-forwarded-ndr", "header:Subject", subject)
		v.Kind = KindForwardedNDR
	case bounce:
		v.Kind = KindBounce
	case autoReplyEvidence(h, subject, &v):
		v.Kind = KindAutoReply
	}
	return v
}

// bounceEvidence records the signals that msg is itself a bounce and reports
// whether any fired.
func bounceEvidence(msg *Message, v *Verdict) bool {
	fired := false
	if msg.Envelope.Sender == "" {
		// RFC 5321 4.5.5: notifications are sent with a null reverse-path.
		v.add("null-sender", "envelope", "<>")
		fired = true
	}
	if ct := msg.Header.Get("Content-Type"); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		if err == nil && mt == "multipart/report" && strings.EqualFold(params["report-type"], "delivery-status") {
			// RFC 3464 2: a DSN is a multipart/report with report-type delivery-status.
			v.add("dsn-report", "header:Content-Type", ct)
			fired = true
		}
	}
	if fired && v.DSNAction == "" {
		v.DSNAction = DSNFailed
	}
	return fired
}

// autoReplyEvidence records RFC 3834 auto-reply markers.
func autoReplyEvidence(h *textproto.Header, subject string, v *Verdict) bool {
	as := strings.ToLower(strings.TrimSpace(h.Get("Auto-Submitted")))
	if as != "" && as != "no" {
		// RFC 3834 5: any value but "no" marks automatic submission.
		v.add("auto-submitted", "header:Auto-Submitted", as)
		return true
	}
	return false
}

// decodeHeader decodes RFC 2047 encoded-words, in any charset go-message
// knows; undecodable text is returned as it was.
func decodeHeader(s string) string {
	dec := mime.WordDecoder{CharsetReader: charset.Reader}
	out, err := dec.DecodeHeader(s)
	if err != nil {
		return s
	}
	return out
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

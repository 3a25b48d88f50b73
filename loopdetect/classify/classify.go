package classify

// Classify returns what msg is and why. It never panics on malformed input
// and never does I/O.
//
// The evidence is weighed in three tiers. Header fields that only reports
// carry (a multipart/report DSN, X-Failed-Recipients, Exchange's NDR flag)
// decide alone. Otherwise a message is a bounce when two of the envelope
// and header signs agree (null sender, daemon sender, report subject), or
// one of them agrees with the report's own text (MTA wording, DSN fields,
// SMTP status codes). A message written by a person or a mailbox rule that
// carries a report inside it, inline below a forward separator or attached
// as message/rfc822, is a forwarded NDR; a reply to a report ("Re:") is
// not. Auto-replies are recognized by their RFC 3834 marks and the
// responders' subjects.
func Classify(msg *Message, opts Options) Verdict {
	w := walker{budget: opts.bodyLimit() + opts.bodyLimit()/2, maxDepth: opts.maxDepth()}
	body := msg.Body
	if len(body) > opts.bodyLimit() {
		body = body[:opts.bodyLimit()]
	}
	a := newAnalysis(fromTextproto(&msg.Header), senderFromEnvelope(&msg.Envelope), 0)
	a.site = site{local: opts.LocalDomains, rcpts: msg.Envelope.Recipients}
	w.body(a, body, nil, 0)
	a.conclude()
	v := a.verdict()
	a.loopSigns(&v, msg, opts)
	return v
}

package classify

// evidence is what the recorded signals of one message add up to: the
// tallies pickKind weighs. The evidence functions fill it as they record.
type evidence struct {
	decisive   bool // a header field that only reports carry
	hdrPts     int  // envelope and header signs, each weak alone
	textPts    int  // the text and structure, a returned message included
	ownTextPts int  // the message's own text alone
	daemon     bool // a daemon sender in From or the envelope
	senderNull bool // the null reverse-path
	isReport   bool // an MDN or feedback report, which stays ordinary
	fwdShape   bool // a forward separator or forward prefix
	dsnOwn     bool // a delivery-status part of the message's own
	// The first attached report and where it is.
	childNDR     *analysis
	childNDRPath []int

	// Forwarding evidence.
	ruleMark   bool // a mailbox rule's marks (strong)
	resent     bool // a resend outside a mailing list (weak)
	replyShape bool // a reply: "Re:" first and text of its own
	embHdr     int  // header signs of an inline forwarded report
	embText    int  // text signs of an inline forwarded report
	inlineNDR  bool // an inline forwarded report
}

// personForward reports a person's forward: their short note, then the
// forwarded report below a separator. A report that returns the original
// below a separator has its own report text above it.
func (e *evidence) personForward() bool {
	return e.fwdShape && !e.senderNull && !e.daemon && e.ownTextPts < 3
}

// pastedReport reports a report's whole text with no envelope or header
// sign of one: from an unknown sender (a stored file) it is a report; from
// a known person it is a report that person pasted into new mail.
func (e *evidence) pastedReport() bool {
	return e.hdrPts == 0 && e.textPts >= 5 && !e.fwdShape
}

// kindReason says which evidence made pickKind's choice when the choice
// itself is recorded as a signal.
type kindReason int

const (
	reasonNone                kindReason = iota
	reasonSubjectForwardedNDR            // "FW: Undeliverable: x"
	reasonReportFromPerson               // a report's text in a person's mail
	reasonRedirect                       // a report passed on unchanged (a.redirect)
)

// conclude weighs what was learned of the message and sets the outcome:
// the signals, the kind and the facts.
func (a *analysis) conclude() {
	e := a.reportEvidence()
	a.forwardEvidence(&e)
	var reason kindReason
	a.kind, reason = a.pickKind(&e)
	a.kindSignals(&e, reason)
	// Auto-reply marks (RFC 3834), recorded whatever the kind.
	autoReply := a.autoReplyEvidence()
	if a.kind == KindOrdinary && autoReply && !e.isReport {
		a.kind = KindAutoReply
	}
	a.facts(e.childNDR)
	if reason == reasonRedirect {
		a.forwardedBy = a.forwarder()
	}
}

// isBounce reports whether the evidence makes the message a report of its
// own (before a mailbox rule's forwarding is considered).
func (a *analysis) isBounce(e *evidence) bool {
	switch {
	case a.challenge != "":
		// A challenge-response request dressed as a DSN is an
		// auto-reply (README.md: challenge-response).
		return false
	case e.decisive:
		return true
	case e.isReport || e.personForward():
		return false
	}
	return e.dsnOwn || e.hdrPts >= 2 || (e.hdrPts >= 1 && e.hdrPts+e.textPts >= 3) ||
		e.pastedReport() && !a.env.known
}

// pickKind chooses the message's kind from the evidence; it records
// nothing. Auto-replies are told apart afterwards, among ordinary mail.
func (a *analysis) pickKind(e *evidence) (Kind, kindReason) {
	switch {
	case a.isBounce(e):
		if a.passedOn(e) {
			// A report a mailbox passed on unchanged.
			return KindForwardedNDR, reasonRedirect
		}
		if e.ruleMark && !e.senderNull && !e.replyShape && a.ruleHeader != "" {
			// A report that a mailbox rule redirected onward.
			return KindForwardedNDR, reasonNone
		}
		return KindBounce, reasonNone
	case e.isReport || e.replyShape:
		return KindOrdinary, reasonNone
	case !e.senderNull && a.depth == 0 &&
		(a.fromDaemon && (e.hdrPts >= 2 || e.textPts >= 1 || a.subject == "" || failureSubject(a.subject)) ||
			a.subj.plainNDR() && e.textPts >= 1) && a.passedOn(e):
		// A report sender's message, or one with a report subject, that
		// a mailbox passed on: the redirect's sign stands for the null
		// reverse-path it lost, and one more sign of a report is wanted,
		// as for an attached one (weakAttachedReport): a postmaster's
		// notice is no report.
		return KindForwardedNDR, reasonRedirect
	case a.subj.forwardedNDR() && !e.senderNull && !e.replyShape:
		return KindForwardedNDR, reasonSubjectForwardedNDR
	case e.childNDR != nil || e.inlineNDR || (e.fwdShape && a.dsnParts > 0):
		return KindForwardedNDR, reasonNone
	case e.ruleMark && (a.subj.plainNDR() || e.hdrPts+e.textPts >= 3 || e.embHdr+e.embText >= 2),
		e.resent && (e.hdrPts+e.textPts >= 3 || e.embHdr+e.embText >= 2):
		// A mailbox rule forwarded it and there is a report sign in it.
		return KindForwardedNDR, reasonNone
	case e.pastedReport() && !e.senderNull || e.fwdShape && e.ownTextPts >= 4 && !e.senderNull:
		return KindForwardedNDR, reasonReportFromPerson
	}
	return KindOrdinary, reasonNone
}

// summary names the first signals of an attached message, for its
// parent's embedded-ndr signal.
func (a *analysis) summary() string {
	s := ""
	for i, sig := range a.signals {
		if i == 3 {
			s += ", …"
			break
		}
		if i > 0 {
			s += ", "
		}
		s += sig.Name
	}
	return s
}

// verdict returns the outcome of the top-level message, without its loop
// signs.
func (a *analysis) verdict() Verdict {
	return Verdict{
		Kind:              a.kind,
		DSNAction:         a.action,
		Signals:           a.signals,
		OriginalMessageID: a.refID,
		OriginalRecipient: a.recipient,
		Hops:              a.hops,
		ForwardDepth:      a.subj.depth,
		ForwardedBy:       a.forwardedBy,
	}
}

// weakAttachedReport reports an attached message that a report sender
// wrote and that shows one more sign of a report, though too few to make
// it one on its own: attached, a report has lost the null reverse-path its
// envelope had. The signs: no subject or one naming a failure in any
// language (failureSubject), report wording, DSN fields or an SMTP reply.
func (a *analysis) weakAttachedReport() bool {
	if a.depth == 0 || a.kind != KindOrdinary || !a.fromDaemon || a.mdn || a.arf {
		return false
	}
	return a.subject == "" || failureSubject(a.subject) || a.text.regions[regionOwn].textPoints() >= 1
}

// passedOn looks for the sign that a mailbox passed the message on
// unchanged (redirectSign), keeps it in a.redirect and reports whether
// there was one.
func (a *analysis) passedOn(e *evidence) bool {
	a.redirect = a.redirectSign(e)
	return a.redirect.Name != ""
}

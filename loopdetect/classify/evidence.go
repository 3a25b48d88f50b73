package classify

import (
	"strconv"
	"strings"
)

// reportEvidence records the signs that the message is a report and
// tallies them: header fields only reports carry, the envelope and header
// signs, other machine reports, and what the text and structure show.
func (a *analysis) reportEvidence() evidence {
	e := evidence{senderNull: a.env.known && a.env.null}
	e.decisive = a.decisiveSignals()
	e.hdrPts, e.daemon = a.headerSigns()
	e.isReport = a.otherReportSignals()
	a.bodySigns(&e)
	return e
}

// decisiveSignals records the header evidence that only reports carry and
// reports whether there was some.
func (a *analysis) decisiveSignals() bool {
	own := &a.text.regions[regionOwn]
	decisive := false
	if a.ct.typ == "multipart/report" && strings.EqualFold(a.ct.param("report-type"), "delivery-status") {
		a.add(SignalDSNReport, "header:Content-Type", a.ctRaw)
		decisive = true
	}
	if a.exchangeNDR {
		a.add(SignalExchangeNDR, "header:X-MS-Exchange-Message-Is-Ndr", "")
		decisive = true
	}
	if a.failedRcpts != "" {
		a.add(SignalFailedRecipients, "header:X-Failed-Recipients", a.failedRcpts)
		decisive = true
	}
	if a.mddsn {
		a.add(SignalMDaemonDSN, "header:X-MDDSN-Message", "")
		decisive = true
	}
	if a.sns && own.ses {
		a.add(SignalSESNotification, "body", "notificationType")
		decisive = true
	}
	if c := a.autoSubmittedReport(); c != "" {
		a.add(SignalReportAutoSubmit, "header:Auto-Submitted", a.autoSubmitted)
		decisive = true
	}
	return decisive
}

// headerSigns records the envelope and header signs of a report, each weak
// alone, and returns their count and whether the sender is a daemon.
func (a *analysis) headerSigns() (pts int, daemon bool) {
	if a.env.known && a.env.null {
		a.add(SignalNullSender, "envelope", "<>")
		pts++
	}
	envDaemon := a.env.known && !a.env.null && isDaemonAddress(a.env.addr)
	if a.fromDaemon {
		a.add(SignalDaemonSender, "header:From", a.from)
		pts++
	} else if envDaemon {
		a.add(SignalDaemonSender, "envelope", a.env.addr)
		pts++
	}
	switch {
	case a.subj.plainNDR():
		a.add(SignalSubjectNDR, "header:Subject", a.subject)
		pts++
	case a.subj.ndrContains != "":
		a.add(SignalSubjectNDR, "header:Subject", a.subject)
		pts++
	}
	if a.postfixHdr != "" {
		a.add(SignalPostfixHeader, "header:"+a.postfixHdr, "")
		pts++
	}
	return pts, a.fromDaemon || envDaemon
}

// otherReportSignals records read receipts (RFC 8098) and abuse reports
// (RFC 5965), machine reports that stay ordinary mail, and reports whether
// the message is one.
func (a *analysis) otherReportSignals() bool {
	mdn := a.mdn || a.reportType == "disposition-notification"
	arf := a.arf || a.reportType == "feedback-report"
	if mdn {
		a.add(SignalMDN, "body", "")
	}
	if arf {
		a.add(SignalFeedbackReport, "body", "")
	}
	return mdn || arf
}

// bodySigns records what the message's own text and structure show: a
// forward shape, report wording, an attached report or returned message,
// a delivery-status part.
func (a *analysis) bodySigns(e *evidence) {
	own := &a.text.regions[regionOwn]
	e.fwdShape = a.text.fwdSep || a.subj.outer == pfxForward && !(a.subj.outerVS && a.text.finnish)
	if e.fwdShape {
		a.add(SignalForwardShape, "body", "")
	}
	e.textPts = own.textPoints()
	e.ownTextPts = e.textPts
	a.textSignals(own, "body")
	var returnedPath []int
	returned := false
	for i, c := range a.children {
		if c.kind == KindBounce || c.kind == KindForwardedNDR {
			if e.childNDR == nil {
				e.childNDR, e.childNDRPath = c, a.childPaths[i]
			}
		} else if !returned {
			returned, returnedPath = true, a.childPaths[i]
		}
	}
	if returned {
		a.add(SignalReturnedMessage, pathString(returnedPath), "")
		e.textPts++
	}
	e.dsnOwn = a.dsnParts > 0 && !a.dsnInForward && !e.fwdShape
	if a.dsnParts > 0 {
		name := SignalDeliveryStatusPart
		if !e.dsnOwn {
			name = SignalForwardedDSNPart
		}
		a.add(name, pathString(a.dsnPath), a.dsnActions.String())
	}
}

// forwardEvidence records the signs that the message was forwarded or
// resent, and tallies them with the reply shape and the inline report.
func (a *analysis) forwardEvidence(e *evidence) {
	own := &a.text.regions[regionOwn]
	emb := &a.text.regions[regionEmbedded]
	// A mailbox rule's marks (strong), a resend (weak: SmartList and
	// other list servers resend every post).
	if a.ruleHeader != "" {
		name, val, _ := strings.Cut(a.ruleHeader, ": ")
		a.add(SignalInboxRule, "header:"+name, val)
		e.ruleMark = true
	}
	if own.rule || emb.rule {
		a.add(SignalInboxRule, "body", "auto forwarded by a rule")
		e.ruleMark = true
	}
	if a.resent != "" {
		name, val, _ := strings.Cut(a.resent, ": ")
		a.add(SignalRedirected, "header:"+name, val)
		e.resent = !a.list
	}
	// A reply: "Re:" first, and something written above what it quotes.
	// A rule that keeps a "Re:" subject writes nothing of its own.
	e.replyShape = (a.subj.outer == pfxReply || a.subj.outerVS && a.text.finnish) &&
		(a.text.ownLines > 0 || !a.text.fwdSep && len(a.children) == 0)
	if emb.daemonFrom != "" {
		e.embHdr++
	}
	if emb.ndrSubject != "" {
		e.embHdr++
	}
	e.embText = emb.textPoints()
	e.inlineNDR = e.embHdr >= 2 || (e.embHdr >= 1 && e.embHdr+e.embText >= 3) || (e.fwdShape && e.embText >= 4) ||
		// Structure, whatever the language: below a forward, the header
		// block of a report sender's message, with one more sign of a
		// report (its subject names a failure or is missing, or its text
		// has report wording, DSN fields or an SMTP reply).
		e.fwdShape && emb.daemonFrom != "" && (emb.daemonFailBlock || e.embText >= 1 ||
			// the forward's own subject names a failure or was empty
			a.subj.outer == pfxForward && (a.subj.rest == "" || failureSubject(a.subj.rest)))
}

// kindSignals records the evidence that the chosen kind rests on: how a
// forwarded report showed, the report a report is about.
func (a *analysis) kindSignals(e *evidence, reason kindReason) {
	emb := &a.text.regions[regionEmbedded]
	switch reason {
	case reasonSubjectForwardedNDR:
		a.add(SignalSubjectForwardedNDR, "header:Subject", a.subject)
	case reasonReportFromPerson:
		a.add(SignalForwardedBlockNDR, "body", "report text from a person")
	case reasonRedirect:
		if !hasSignal(a.signals, a.redirect.Name) || a.redirect.Name == SignalForwardingHeader {
			a.add(a.redirect.Name, a.redirect.Where, a.redirect.Value)
		}
	}
	if (a.kind == KindBounce || a.kind == KindForwardedNDR) && a.depth == 0 {
		if out := a.site.outside(); out != "" {
			a.add(SignalOutbound, "envelope", out)
		}
	}
	switch a.kind {
	case KindBounce:
		if e.childNDR != nil {
			// A report about a report: the loop is already running.
			a.add(SignalEmbeddedNDR, pathString(e.childNDRPath), string(e.childNDR.kind)+": "+e.childNDR.reason)
		}
	case KindForwardedNDR:
		if e.childNDR != nil {
			a.add(SignalEmbeddedNDR, pathString(e.childNDRPath), string(e.childNDR.kind)+": "+e.childNDR.reason)
		}
		if e.inlineNDR {
			val := emb.ndrSubject
			if val == "" {
				val = emb.daemonFrom
			}
			a.add(SignalForwardedBlockNDR, "body", val)
			a.textSignals(emb, "body:forwarded")
		}
		if a.subj.forwardedNDR() && !hasSignal(a.signals, SignalSubjectForwardedNDR) {
			a.add(SignalSubjectForwardedNDR, "header:Subject", a.subject)
		}
	}
}

// textSignals records what a region of the text showed.
func (a *analysis) textSignals(r *region, where string) {
	if r.firstPhrase >= 0 {
		a.add(SignalBodyNDRPhrase, where, bodyPhrases[r.firstPhrase].text)
	}
	if n := r.dsnFieldCount(); n >= 2 {
		a.add(SignalDSNFields, where, strconv.Itoa(n)+" fields")
	}
	if r.smtp != "" {
		a.add(SignalSMTPStatus, where, r.smtp)
	}
	if r.dsnCT {
		a.add(SignalDeliveryStatusPart, where, "Content-Type line")
	}
}

// autoReplyEvidence records the RFC 3834 marks and responder subjects and
// reports whether they make the message an auto-reply.
func (a *analysis) autoReplyEvidence() bool {
	strong := false
	as := a.autoSubmitted
	switch {
	case as == "" || as == "no":
	case strings.HasPrefix(as, "auto-replied"):
		// RFC 3834 5.2: a response to a message.
		a.add(SignalAutoSubmitted, "header:Auto-Submitted", as)
		strong = true
	default:
		// RFC 3834 5.2: auto-generated is a notification, not a reply;
		// Bugzilla and CI mail say so on every message.
		a.add(SignalAutoGenerated, "header:Auto-Submitted", as)
		if strings.HasPrefix(as, "auto-generated") && !a.list &&
			(a.subj.outer == pfxReply || a.subj.autoPrefix) {
			// A generated message answering one (Sieve vacation
			// implementations that say auto-generated).
			strong = true
		}
	}
	switch p := a.precedence; {
	case p == "auto_reply" || p == "auto-reply":
		a.add(SignalPrecedence, "header:Precedence", p)
		strong = true
	case p == "bulk" || p == "junk" || p == "list":
		a.add(SignalPrecedence, "header:Precedence", p)
	}
	if a.challenge != "" {
		a.add(SignalChallenge, "body", a.challenge)
		strong = true
	}
	if a.arHeader != "" {
		name, val, _ := strings.Cut(a.arHeader, ": ")
		a.add(SignalAutoReplyHeader, "header:"+name, val)
		strong = true
	}
	// Weaker signs, which make an auto-reply only together: a field that
	// responders and notifications both write, the null reverse-path,
	// Precedence: bulk/junk or Auto-Submitted: auto-generated outside a
	// list, and the responder's wording in the message's own text.
	own := &a.text.regions[regionOwn]
	other := a.arWeak != "" || a.env.known && a.env.null ||
		!a.list && (a.precedence == "bulk" || a.precedence == "junk" || strings.HasPrefix(as, "auto-generated"))
	if a.arWeak != "" {
		name, val, _ := strings.Cut(a.arWeak, ": ")
		a.add(SignalAutoReplyWeakHeader, "header:"+name, val)
	}
	if own.autoFirst >= 0 {
		a.add(SignalAutoReplyBody, "body", bodyPhrases[own.autoFirst].text)
	}
	switch {
	case a.subj.autoReply != "" && !a.subj.autoWeak:
		a.add(SignalSubjectAutoReply, "header:Subject", a.subject)
		strong = true
	case a.subj.autoReply != "" && (other || own.autoPts >= 1) && !a.list:
		a.add(SignalSubjectAutoReply, "header:Subject", a.subject)
		strong = true
	case own.autoPts >= 2 && !a.list && a.subj.replies+a.subj.forwards <= 1,
		own.autoPts >= 1 && other && !a.list:
		// "This is an automatic reply" in its own text; a responder's
		// usual wording with another sign.
		strong = true
	}
	if a.subj.autoReply == "" && a.subj.autoPrefix && a.subj.replies == 0 && a.subj.forwards == 0 &&
		(a.precedence == "bulk" || a.precedence == "junk" || a.autoSubmitted != "" || a.env.known && a.env.null) {
		// "Auto: x" (RFC 3834 3.1.5) with another mark.
		a.add(SignalSubjectAutoReply, "header:Subject", a.subject)
		strong = true
	}
	return strong
}

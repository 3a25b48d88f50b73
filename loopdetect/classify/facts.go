package classify

import (
	"strings"

	"github.com/loopbreaker/loopbreaker/loopdetect/address"
)

// facts fills the DSN action, the original message and recipient, and the
// count of reports along the chain.
func (a *analysis) facts(childNDR *analysis) {
	own := &a.text.regions[regionOwn]
	emb := &a.text.regions[regionEmbedded]
	kind := a.kind
	if a.redirect.Name != "" {
		kind = KindBounce // the report itself, passed on: its facts are its own
	}
	switch kind {
	case KindBounce:
		a.action = a.bounceAction()
		nested := emb.ndrBlocks
		if childNDR != nil && childNDR.ndrCount > nested {
			nested = childNDR.ndrCount
		}
		if s := a.subj.ndrs - 1; s > nested {
			nested = s
		}
		if a.subj.innerFwdNDR && nested < 1 {
			nested = 1
		}
		a.ndrCount = 1 + nested
	case KindForwardedNDR:
		n := emb.ndrBlocks
		if childNDR != nil && childNDR.ndrCount > n {
			n = childNDR.ndrCount
		}
		if a.subj.ndrs > n {
			n = a.subj.ndrs
		}
		if emb.fwdNDR && n < 2 {
			n = 2
		}
		if n < 1 {
			n = 1
		}
		a.ndrCount = n
		switch {
		case childNDR != nil:
			a.action = childNDR.action
		case emb.actions != 0:
			a.action = emb.actions.String()
		case emb.kindPts[phDelay] > emb.kindPts[phFailure]:
			a.action = DSNDelayed
		case emb.kindPts[phSuccess] > emb.kindPts[phFailure]:
			a.action = DSNDelivered
		case emb.kindPts[phFailure] > 0 || a.subj.ndrKind == phFailure && a.subj.ndrPhrase != "":
			a.action = DSNFailed
		case a.subj.ndrPhrase != "" && a.subj.ndrKind == phDelay:
			a.action = DSNDelayed
		}
	}
	if a.kind != KindBounce && a.kind != KindForwardedNDR {
		return
	}
	// The message the report is about: the innermost ordinary message of
	// an attached chain, else the returned header in the text.
	for _, c := range a.children {
		if c.kind == KindBounce || c.kind == KindForwardedNDR {
			if c.refID != "" {
				a.refID = c.refID
				break
			}
			continue
		}
		if c.msgID != "" {
			a.refID = c.msgID
			break
		}
	}
	if a.refID == "" {
		a.refID = emb.messageID
	}
	if a.refID == "" && kind == KindBounce {
		a.refID = own.messageID
		if a.refID == "" {
			a.refID = a.origMsgID
		}
	}
	// The recipient that failed.
	switch {
	case a.dsnRecipient != "":
		a.recipient = a.dsnRecipient
	case address.Extract(a.failedRcpts) != "":
		a.recipient = address.Extract(a.failedRcpts)
	case own.recipient != "" && kind == KindBounce:
		a.recipient = own.recipient
	case childNDR != nil && childNDR.recipient != "":
		a.recipient = childNDR.recipient
	case emb.recipient != "":
		a.recipient = emb.recipient
	case own.recipient != "":
		a.recipient = own.recipient
	}
}

// bounceAction tells failure, delay and success notices apart (RFC 3464
// 2.3.3), from the DSN fields when there are some, else from the words.
func (a *analysis) bounceAction() string {
	own := &a.text.regions[regionOwn]
	if s := a.dsnActions.String(); s != "" {
		return s
	}
	if s := own.actions.String(); s != "" {
		return s
	}
	switch a.autoSubmittedReport() {
	case "failure", "bounce":
		return DSNFailed
	case "delay", "warning":
		return DSNDelayed
	}
	if a.subj.ndrPhrase != "" || a.subj.ndrContains != "" {
		switch a.subj.ndrKind {
		case phDelay:
			return DSNDelayed
		case phSuccess:
			return DSNDelivered
		}
	}
	if s := strings.ToLower(a.subj.rest); strings.HasPrefix(s, "warning: message ") && strings.Contains(s, " delayed ") {
		return DSNDelayed
	}
	f, d, s := own.kindPts[phFailure], own.kindPts[phDelay], own.kindPts[phSuccess]
	switch {
	case d > f && d >= s:
		return DSNDelayed
	case s > f && s > d:
		return DSNDelivered
	}
	return DSNFailed
}

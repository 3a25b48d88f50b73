package milter

import (
	"fmt"
	"log/slog"
	"strings"

	gomilter "github.com/d--j/go-milter"

	"github.com/loopbreaker/loopbreaker/loopdetect/classify"
	"github.com/loopbreaker/loopbreaker/loopdetect/engine"
	"github.com/loopbreaker/loopbreaker/loopdetect/policy"
)

// Header fields loopbreaker adds.
const (
	// HeaderInfo names the rule, key and count behind an action.
	HeaderInfo = "X-Loopbreaker"
	// HeaderOriginalRecipients lists the recipients a redirect replaced.
	HeaderOriginalRecipients = "X-Loopbreaker-Original-Recipients"
)

// apply turns a decision into the end-of-message reply and modifications.
// A modification the MTA refuses degrades to the next safest action that
// loses nothing: redirect to quarantine, quarantine to tempfail.
func apply(m gomilter.Modifier, d *engine.Decision, env *classify.Envelope, log *slog.Logger) *gomilter.Response {
	info := fmt.Sprintf("rule=%s; key=%s; count=%d; limit=%d; kind=%s", d.Rule, d.Key, d.Count, d.Limit, d.Verdict.Kind)
	switch d.Action {
	case policy.ActionNone, policy.ActionMonitor:
		return gomilter.RespAccept
	case policy.ActionTag:
		if err := m.AddHeader(HeaderInfo, info); err != nil {
			log.Warn("tag failed", "err", err)
		}
		return gomilter.RespAccept
	case policy.ActionReject:
		return replyOr(550, d.Reply, gomilter.RespReject, log)
	case policy.ActionTempfail:
		return replyOr(451, d.Reply, gomilter.RespTempFail, log)
	case policy.ActionDiscard:
		return gomilter.RespDiscard
	case policy.ActionRedirect:
		if err := redirect(m, d.QuarantineMailbox, env.Recipients, info); err == nil {
			return gomilter.RespAccept
		} else {
			log.Warn("redirect failed; quarantining instead", "err", err)
		}
		fallthrough
	case policy.ActionQuarantine:
		if err := m.Quarantine("loopbreaker " + info); err != nil {
			log.Warn("quarantine failed; deferring the message instead", "err", err)
			return gomilter.RespTempFail
		}
		_ = m.AddHeader(HeaderInfo, info)
		return gomilter.RespAccept
	}
	log.Error("unknown action; accepting", "action", d.Action)
	return gomilter.RespAccept
}

// redirect replaces every recipient with the quarantine mailbox. The
// mailbox is added before any recipient is removed, so a refusal leaves the
// message as it was.
func redirect(m gomilter.Modifier, mailbox string, rcpts []string, info string) error {
	if mailbox == "" {
		return fmt.Errorf("no quarantine mailbox")
	}
	if err := m.AddRecipient(mailbox, ""); err != nil {
		return fmt.Errorf("adding %s: %w", mailbox, err)
	}
	for _, r := range rcpts {
		if strings.EqualFold(strings.Trim(r, "<>"), mailbox) {
			continue
		}
		if err := m.DeleteRecipient(r); err != nil {
			return fmt.Errorf("deleting %s: %w", r, err)
		}
	}
	if err := m.AddHeader(HeaderOriginalRecipients, strings.Join(rcpts, ", ")); err != nil {
		return fmt.Errorf("adding header: %w", err)
	}
	return m.AddHeader(HeaderInfo, info)
}

func replyOr(code uint16, text string, fallback *gomilter.Response, log *slog.Logger) *gomilter.Response {
	r, err := gomilter.RejectWithCodeAndReason(code, text)
	if err != nil {
		log.Warn("bad reply text; using the plain code", "err", err)
		return fallback
	}
	return r
}

package milter

import (
	"fmt"
	"log/slog"
	"strings"

	gomilter "github.com/d--j/go-milter"

	"github.com/loopbreaker/loopbreaker/loopdetect/address"
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

// onRefusal is what is done instead when the MTA refuses a modification
// that an action needs (an older MTA that did not offer the action at
// negotiation, a recipient it will not add or delete). It is the only place
// where the milter departs from the engine's decision; every fallback that
// can be known before the reply is the engine's (engine.Decision.Fallback).
// Each step loses nothing: a redirect that cannot be made holds the message
// in the MTA's hold queue, a hold that cannot be made defers the message
// (the sending MTA retries), a tag that cannot be added lets the message
// through untagged. Each refusal is logged and counted as an error of the
// milter (loopbreaker_errors_total{where="milter"}).
var onRefusal = map[policy.Action]policy.Action{
	policy.ActionRedirect:   policy.ActionQuarantine,
	policy.ActionQuarantine: policy.ActionTempfail,
	policy.ActionTag:        policy.ActionNone,
}

// apply carries the engine's decision out at end of message: it returns
// the reply and the action done, which is d.Action unless the MTA refused
// a modification (see onRefusal); failed is told of each refusal.
func apply(m gomilter.Modifier, d *engine.Decision, env *classify.Envelope, log *slog.Logger, failed func(where string)) (*gomilter.Response, policy.Action) {
	info := fmt.Sprintf("rule=%s; key=%s; count=%d; limit=%d; kind=%s", d.Rule, d.Key, d.Count, d.Limit, d.Verdict.Kind)
	action := d.Action
	for {
		resp, err := carryOut(m, action, d, env, info, log)
		if err == nil {
			return resp, action
		}
		next := onRefusal[action]
		log.Warn("the MTA refused the action's modification; falling back", "action", string(action), "instead", string(next), "err", err)
		failed("milter")
		action = next
	}
}

// carryOut does one action: it asks the MTA for the modifications and
// returns the reply. It fails only when the MTA refuses a modification, and
// only for the actions onRefusal lists.
func carryOut(m gomilter.Modifier, action policy.Action, d *engine.Decision, env *classify.Envelope, info string, log *slog.Logger) (*gomilter.Response, error) {
	switch action {
	case policy.ActionNone, policy.ActionMonitor:
		return gomilter.RespAccept, nil
	case policy.ActionTag:
		if err := m.AddHeader(HeaderInfo, info); err != nil {
			return nil, fmt.Errorf("adding %s: %w", HeaderInfo, err)
		}
		return gomilter.RespAccept, nil
	case policy.ActionReject, policy.ActionTempfail:
		if action != d.Action {
			// A fallback: the decision's reply is another action's.
			return refuse(action, 0, "", log), nil
		}
		return refuse(action, d.ReplyCode, d.Reply, log), nil
	case policy.ActionDiscard:
		return gomilter.RespDiscard, nil
	case policy.ActionRedirect:
		if err := redirect(m, d.QuarantineMailbox, env.Recipients, info); err != nil {
			return nil, err
		}
		return gomilter.RespAccept, nil
	case policy.ActionQuarantine:
		if err := m.Quarantine("loopbreaker " + info); err != nil {
			return nil, fmt.Errorf("quarantine: %w", err)
		}
		_ = m.AddHeader(HeaderInfo, info)
		return gomilter.RespAccept, nil
	}
	log.Error("unknown action; accepting", "action", action)
	return gomilter.RespAccept, nil
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
		if strings.EqualFold(address.Path(r), mailbox) {
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

// refuse is the reply of reject or tempfail: the engine's code and text
// (engine.Decision.ReplyCode, Reply), or the MTA's own reply for the action
// when there is no text or the text cannot be sent.
func refuse(action policy.Action, code int, text string, log *slog.Logger) *gomilter.Response {
	plain := gomilter.RespReject
	if action == policy.ActionTempfail {
		plain = gomilter.RespTempFail
	}
	if text == "" {
		return plain
	}
	r, err := gomilter.RejectWithCodeAndReason(uint16(code), text)
	if err != nil {
		log.Warn("bad reply text; using the plain code", "err", err)
		return plain
	}
	return r
}

// Package engine is where loopbreaker decides what happens to a message:
// it classifies the message, matches it against the policy's rules, counts
// it under each matching rule's keys and settles the action, fallbacks
// included. A Decision's Action is what will be done; when it is not the
// acting rule's action (a redirect without a quarantine mailbox, a refusal
// of mail that has no SMTP client to refuse), RuleAction keeps the rule's
// and Fallback says why. In monitor mode (policy.ModeMonitor) the engine
// counts and starts blocks as in enforce mode and settles the same action,
// fallbacks included, but puts it in WouldAction and leaves Action none:
// the milter then does nothing, and the observers and the audit trail say
// what would have been done. The engine knows nothing of the milter protocol:
// the milter package only carries a Decision out, and its one departure
// from it, when the MTA refuses a modification, is its own documented
// fallback (milter.onRefusal).
package engine

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/loopbreaker/loopbreaker/loopdetect/classify"
	"github.com/loopbreaker/loopbreaker/loopdetect/policy"
	"github.com/loopbreaker/loopbreaker/state"
)

// Store counts and keeps blocks; *state.Store is the implementation.
type Store interface {
	Hit(ctx context.Context, r state.Request) (state.Result, error)
	Blocked(rule, key string) (state.Block, bool)
	// Record keeps an audit event (batched with the counts).
	Record(ev state.Event)
}

// Observer is told what the engine does, for metrics. Its methods must be
// safe for concurrent use and quick.
type Observer interface {
	// Decided reports one end-of-message decision and how long it took.
	Decided(d *Decision, took time.Duration)
	// Counted reports one state store call and its outcome.
	Counted(took time.Duration, err error)
	// Failed reports an error outside the store (where: "milter", "policy").
	Failed(where string)
}

type nopObserver struct{}

func (nopObserver) Decided(*Decision, time.Duration) {}
func (nopObserver) Counted(time.Duration, error)     {}
func (nopObserver) Failed(string)                    {}

// Engine decides. It is safe for concurrent use; the policy can be swapped
// while messages are being decided.
type Engine struct {
	policy atomic.Pointer[policy.Policy]
	store  Store
	log    *slog.Logger
	obs    Observer
}

// New returns an engine over the policy and the store.
func New(p *policy.Policy, store Store, log *slog.Logger) *Engine {
	if log == nil {
		log = slog.Default()
	}
	e := &Engine{store: store, log: log, obs: nopObserver{}}
	e.policy.Store(p)
	return e
}

// Observe sets the observer; call it before the engine is used.
func (e *Engine) Observe(o Observer) { e.obs = o }

// Failed reports an error of the caller's (the milter layer's) to the observer.
func (e *Engine) Failed(where string) { e.obs.Failed(where) }

// Policy is the policy in force.
func (e *Engine) Policy() *policy.Policy { return e.policy.Load() }

// SetPolicy swaps the policy atomically; messages being decided finish with
// the one they started with. Counts are kept by rule name, so a rule whose
// limit changes keeps its counts.
func (e *Engine) SetPolicy(p *policy.Policy) { e.policy.Store(p) }

// Hit is one rule's count for one key of a message.
type Hit struct {
	Rule    string
	Key     string
	Count   int
	Limit   int
	Blocked bool
}

// Origin is how a message reached the MTA. It settles whether a refusal
// can reach anyone.
type Origin uint8

const (
	// FromSMTPClient: an SMTP client sent the message and is told of a
	// refusal. The zero value; an MTA that does not say is taken for SMTP.
	FromSMTPClient Origin = iota
	// WithoutSMTPClient: the MTA made the message or took it in locally
	// (Postfix's own bounces through non_smtpd_milters, the sendmail
	// command). Nobody is on the other end to be told: a refused bounce
	// fails in Postfix and leaves its original deferred, to bounce again on
	// every retry, and Postfix cannot refuse one of its recipients at all
	// ("milter configuration error: can't reject recipient in non-smtpd").
	WithoutSMTPClient
)

// Fallback reasons: why a Decision's Action is not its RuleAction.
const (
	// FallbackNoQuarantineMailbox: the rule redirects but the policy has
	// no quarantine_mailbox; the message is held in the MTA's hold queue.
	FallbackNoQuarantineMailbox = "redirect without a quarantine_mailbox; quarantining instead"
	// FallbackNoSMTPClient: the rule refuses (reject, tempfail) mail that
	// came without an SMTP client (see WithoutSMTPClient); the message is
	// held instead, and postsuper -H releases it.
	FallbackNoSMTPClient = "no SMTP client to refuse; holding instead"
)

// Decision is what will be done with one message, and why.
type Decision struct {
	Verdict classify.Verdict
	// Action is what will be done: policy.ActionNone when the message goes
	// on untouched. It is settled, fallbacks included; the milter carries
	// it out as it is unless the MTA refuses a modification. In monitor
	// mode it is always ActionNone (see WouldAction).
	Action policy.Action
	// Mode is the mode the decision was made in: enforce or monitor.
	Mode policy.Mode
	// WouldAction is, in monitor mode, what enforce mode would have done
	// with the message, settled exactly as Action would be (RuleAction,
	// Fallback, ReplyCode, Reply and QuarantineMailbox describe it);
	// ActionNone in enforce mode and when no rule acts.
	WouldAction policy.Action
	// RuleAction is the acting rule's own action. It differs from the
	// settled action (Settled) only when Fallback is set.
	RuleAction policy.Action
	// Fallback says why the settled action is not RuleAction (one of the
	// Fallback constants), for logs and audit; "" when it is.
	Fallback string
	// Rule, Key, Count and Limit name the rule that acts.
	Rule  string
	Key   string
	Count int
	Limit int
	// Window is the acting rule's window.
	Window time.Duration
	// NewBlock says this message started the block.
	NewBlock bool
	// Acted is how many messages the block has acted on, this one included.
	Acted int
	// Until is when the block ends.
	Until time.Time
	// ReplyCode and Reply are the SMTP reply of reject and tempfail: the
	// code (RFC 5321 4.2) and the text, which begins with an enhanced
	// status code (RFC 3463). Both are zero for the other actions.
	ReplyCode int
	Reply     string
	// QuarantineMailbox is where redirect sends the message.
	QuarantineMailbox string
	// Hits are all counts taken, including rules that did not act.
	Hits []Hit
	// Monitored names monitor rules that were over their limit.
	Monitored []string
	// StoreErr is set when counting failed; the message was let through.
	StoreErr error
}

// Settled is the action the decision settled on: Action, or in monitor
// mode WouldAction, the one enforce mode would have done.
func (d *Decision) Settled() policy.Action {
	if d.WouldAction != policy.ActionNone {
		return d.WouldAction
	}
	return d.Action
}

// Decide classifies msg, which came from an SMTP client, and applies the
// policy to it; see DecideFrom.
func (e *Engine) Decide(ctx context.Context, msg *classify.Message) Decision {
	return e.DecideFrom(ctx, FromSMTPClient, msg)
}

// DecideFrom classifies msg, which reached the MTA as origin says, and
// applies the policy to it. A failure of the store lets the message through
// (fail open) and is reported in StoreErr: a loop breaker must never stop
// ordinary mail because its own state broke.
func (e *Engine) DecideFrom(ctx context.Context, origin Origin, msg *classify.Message) Decision {
	start := time.Now()
	d := e.decideMessage(ctx, origin, msg)
	e.obs.Decided(&d, time.Since(start))
	return d
}

// decideMessage is DecideFrom without the observer: classify, count under
// every matching rule, let the first rule over its limit act, settle.
func (e *Engine) decideMessage(ctx context.Context, origin Origin, msg *classify.Message) Decision {
	p := e.policy.Load()
	v := classify.Classify(msg, classifierOptions(p))
	d := Decision{Verdict: v, Mode: p.CurrentMode()}
	var acting *policy.Rule
	subject := ""
	for i := range p.Rules {
		r := &p.Rules[i]
		rcpts, ok := p.Match(r, msg, &v)
		if !ok {
			continue
		}
		keys := p.Keys(r, msg, &v, rcpts)
		for _, key := range keys {
			if subject == "" {
				subject = classify.DecodeHeader(msg.Header.Get("Subject"))
			}
			res, err := e.count(ctx, r, key, subject)
			if err != nil {
				d.StoreErr = err
				e.log.ErrorContext(ctx, "counting failed; letting the message through", "rule", r.Name, "key", key, "err", err)
				if !res.Blocked {
					continue
				}
			}
			d.Hits = append(d.Hits, Hit{Rule: r.Name, Key: key, Count: res.Count, Limit: r.Limit, Blocked: res.Blocked})
			if !res.Blocked {
				continue
			}
			if r.Action == policy.ActionMonitor {
				d.Monitored = append(d.Monitored, r.Name)
				continue
			}
			if acting != nil {
				continue // an earlier rule acts already
			}
			acting = r
			d.Rule, d.Key, d.Count, d.Limit, d.Window = r.Name, key, res.Count, r.Limit, r.Window.D()
			d.NewBlock, d.Until, d.Acted = res.NewBlock, res.Block.Until, res.Block.Count
		}
	}
	if acting == nil {
		return d
	}
	settle(&d, acting, p, origin)
	e.record(&d, &msg.Envelope, subject)
	return d
}

// settle sets the Decision's action from the acting rule's: this is where
// every fallback that can be known before the reply is taken, so that
// Action is what will be done.
//
//   - redirect without a quarantine mailbox holds the message instead
//     (FallbackNoQuarantineMailbox);
//   - reject and tempfail of mail without an SMTP client hold it instead
//     (FallbackNoSMTPClient).
//
// It also fills in what carrying the action out needs: the mailbox of a
// redirect, the reply of a refusal. In monitor mode the settled action
// moves to WouldAction and Action is none: nothing is done.
func settle(d *Decision, r *policy.Rule, p *policy.Policy, origin Origin) {
	d.Mode = p.CurrentMode()
	defer func() {
		if d.Mode == policy.ModeMonitor {
			d.WouldAction, d.Action = d.Action, policy.ActionNone
		}
	}()
	d.RuleAction, d.Action = r.Action, r.Action
	switch {
	case d.Action == policy.ActionRedirect && p.QuarantineMailbox == "":
		d.Action, d.Fallback = policy.ActionQuarantine, FallbackNoQuarantineMailbox
	case refuses(d.Action) && origin == WithoutSMTPClient:
		d.Action, d.Fallback = policy.ActionQuarantine, FallbackNoSMTPClient
	}
	if d.Action == policy.ActionRedirect {
		d.QuarantineMailbox = p.QuarantineMailbox
	}
	if refuses(d.Action) {
		d.ReplyCode, d.Reply = reply(r, d)
	}
}

// BlockAction is what a block of the named rule does to each message it
// acts on under the policy in force, settled as for mail from an SMTP
// client (a redirect without a quarantine mailbox holds), and the mode: in
// monitor mode the block only would do it. ok is false when the policy has
// no such rule.
func (e *Engine) BlockAction(rule string) (action policy.Action, mode policy.Mode, ok bool) {
	p := e.policy.Load()
	r, ok := p.Rule(rule)
	if !ok {
		return policy.ActionNone, p.CurrentMode(), false
	}
	var d Decision
	settle(&d, r, p, FromSMTPClient)
	return d.Settled(), d.Mode, true
}

// classifierOptions are the policy's settings for the classifier: it reads
// as much of the body as the policy's body_limit says (the milter gathers
// that much), not its own default. The policy sets no hop count of its own
// (a rule's min_hops selects on Verdict.Hops), so MaxHops stays the
// classifier's.
func classifierOptions(p *policy.Policy) classify.Options {
	return classify.Options{BodyLimit: p.BodyLimit, LocalDomains: p.LocalDomains}
}

// record adds an acted-on decision to the audit trail; in monitor mode
// one that would have been acted on: Action "none", WouldAction what
// enforce mode would have done.
func (e *Engine) record(d *Decision, env *classify.Envelope, subject string) {
	action := string(d.Action)
	if d.WouldAction != policy.ActionNone {
		action = "none"
	}
	e.store.Record(state.Event{
		QueueID: env.QueueID, Rule: d.Rule, Key: d.Key, Action: action, WouldAction: string(d.WouldAction),
		Count: d.Count, Limit: d.Limit, Acted: d.Acted, Kind: string(d.Verdict.Kind),
		Sender: env.Sender, Subject: subject, NewBlock: d.NewBlock,
	})
}

// count takes one hit. A limit of 0 acts on every message without keeping a
// block (and without a disk write per message).
func (e *Engine) count(ctx context.Context, r *policy.Rule, key, subject string) (state.Result, error) {
	if r.Limit == 0 && r.BlockFor.D() <= 0 {
		return state.Result{Count: 1, Blocked: true}, nil
	}
	window := r.Window.D()
	if window <= 0 {
		window = time.Second
	}
	start := time.Now()
	res, err := e.store.Hit(ctx, state.Request{
		Rule: r.Name, Key: key, Window: window, Limit: r.Limit,
		BlockFor: r.BlockFor.D(), Subject: subject,
	})
	e.obs.Counted(time.Since(start), err)
	return res, err
}

// refusal is the SMTP reply of an action that refuses the message.
type refusal struct {
	code     int    // RFC 5321 4.2
	enhanced string // RFC 3463
}

// refusals are the replies of reject and tempfail: the one place their
// codes are written.
var refusals = map[policy.Action]refusal{
	policy.ActionReject:   {550, "5.7.1"},
	policy.ActionTempfail: {451, "4.7.1"},
}

// refuses says whether the action refuses the message with an SMTP reply.
func refuses(a policy.Action) bool {
	_, ok := refusals[a]
	return ok
}

// reply builds the SMTP reply of a reject or tempfail: the rule's own text,
// or one that tells the sender what was counted and for how long.
func reply(r *policy.Rule, d *Decision) (int, string) {
	ref := refusals[d.Action]
	if r != nil && r.SMTPText != "" {
		t := r.SMTPText
		if len(t) < 5 || !(t[0] == '4' || t[0] == '5') || t[1] != '.' {
			t = ref.enhanced + " " + t
		} else if t[0] != ref.enhanced[0] {
			t = ref.enhanced[:1] + t[1:]
		}
		return ref.code, t
	}
	var kinds string
	if r != nil {
		kinds = strings.Join(r.Kinds, "/")
	}
	s := fmt.Sprintf("%s loopbreaker: mail loop suspected: more than %d %s messages for %s in %s (rule %s)",
		ref.enhanced, d.Limit, kinds, d.Key, d.Window, d.Rule)
	if !d.Until.IsZero() {
		s += "; blocked until " + d.Until.UTC().Format(time.RFC3339)
	}
	return ref.code, s
}

// CheckRecipient is the early check at RCPT TO, before the body is sent: a
// null-sender message (a bounce, RFC 5321 4.5.5) from an SMTP client to a
// recipient whose key is already blocked by a bounce rule that rejects or
// tempfails is refused for that recipient alone. The refusal is counted on
// the block. Mail without an SMTP client is never refused here (see
// WithoutSMTPClient): end of message holds it instead. Anything that needs
// the message itself to decide waits for end of message.
//
// In monitor mode nothing is refused or counted here: the message goes on
// to end of message, where it is counted under the same keys (one hit per
// recipient, as here) and the decision says it would have been refused.
func (e *Engine) CheckRecipient(ctx context.Context, origin Origin, env classify.Envelope, rcpt string) Decision {
	p := e.policy.Load()
	d := Decision{Mode: p.CurrentMode()}
	if env.Sender != "" || origin == WithoutSMTPClient || d.Mode == policy.ModeMonitor {
		return d
	}
	env.Recipients = []string{rcpt}
	msg := &classify.Message{Envelope: env}
	v := classify.Verdict{Kind: classify.KindBounce}
	for i := range p.Rules {
		r := &p.Rules[i]
		if !refuses(r.Action) {
			continue
		}
		if !slices.Contains(r.Kinds, string(classify.KindBounce)) {
			continue
		}
		rcpts, ok := p.Match(r, msg, &v)
		if !ok {
			continue
		}
		for _, key := range p.Keys(r, msg, &v, rcpts) {
			if _, blocked := e.store.Blocked(r.Name, key); !blocked {
				continue
			}
			res, err := e.count(ctx, r, key, "")
			if err != nil || !res.Blocked {
				continue // the block ended in between, or the store failed: let it through
			}
			d.Verdict = v
			d.Rule, d.Key, d.Count, d.Limit, d.Window = r.Name, key, res.Count, r.Limit, r.Window.D()
			d.Until, d.Acted = res.Block.Until, res.Block.Count
			settle(&d, r, p, origin)
			e.record(&d, &env, "(refused at RCPT TO "+rcpt+")")
			return d
		}
	}
	return d
}

// Observers fans out to several observers.
type Observers []Observer

// Decided tells each observer.
func (os Observers) Decided(d *Decision, took time.Duration) {
	for _, o := range os {
		o.Decided(d, took)
	}
}

// Counted tells each observer.
func (os Observers) Counted(took time.Duration, err error) {
	for _, o := range os {
		o.Counted(took, err)
	}
}

// Failed tells each observer.
func (os Observers) Failed(where string) {
	for _, o := range os {
		o.Failed(where)
	}
}

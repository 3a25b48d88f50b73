// Package decide is loopbreaker's decision core: it classifies a message,
// matches it against the policy's rules, counts it under each matching
// rule's keys and returns what to do. It knows nothing of the milter
// protocol; the milter package translates its Decision into replies and
// message modifications.
package engine

import (
	"context"
	"fmt"
	"log/slog"
	"mime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-message/charset"

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

// Decision is what to do with one message, and why.
type Decision struct {
	Verdict classify.Verdict
	// Action is policy.ActionNone when the message goes on untouched.
	Action policy.Action
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
	// Reply is the SMTP reply text for reject and tempfail, beginning with an
	// enhanced status code (RFC 3463).
	Reply string
	// QuarantineMailbox is where redirect sends the message.
	QuarantineMailbox string
	// Hits are all counts taken, including rules that did not act.
	Hits []Hit
	// Monitored names monitor rules that were over their limit.
	Monitored []string
	// StoreErr is set when counting failed; the message was let through.
	StoreErr error
}

// Decide classifies msg and applies the policy to it. A failure of the
// store lets the message through (fail open) and is reported in StoreErr:
// a loop breaker must never stop ordinary mail because its own state broke.
func (e *Engine) Decide(ctx context.Context, msg *classify.Message) Decision {
	start := time.Now()
	d := e.decide(ctx, msg)
	e.obs.Decided(&d, time.Since(start))
	return d
}

func (e *Engine) decide(ctx context.Context, msg *classify.Message) Decision {
	p := e.policy.Load()
	v := classify.Classify(msg, classifierOptions(p))
	d := Decision{Verdict: v}
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
				subject = decodeSubject(msg.Header.Get("Subject"))
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
			if d.Action != policy.ActionNone {
				continue // an earlier rule acts already
			}
			d.Action = r.Action
			d.Rule, d.Key, d.Count, d.Limit, d.Window = r.Name, key, res.Count, r.Limit, r.Window.D()
			d.NewBlock, d.Until, d.Acted = res.NewBlock, res.Block.Until, res.Block.Count
		}
	}
	if d.Action == policy.ActionRedirect {
		d.QuarantineMailbox = p.QuarantineMailbox
		if d.QuarantineMailbox == "" {
			d.Action = policy.ActionQuarantine
		}
	}
	if d.Action == policy.ActionReject || d.Action == policy.ActionTempfail {
		r, _ := p.Rule(d.Rule)
		d.Reply = reply(r, &d)
	}
	if d.Action != policy.ActionNone {
		e.record(&d, &msg.Envelope, subject)
	}
	return d
}

// classifierOptions are the policy's settings for the classifier: it reads
// as much of the body as the policy's body_limit says (the milter gathers
// that much), not its own default. The policy sets no hop count of its own
// (a rule's min_hops selects on Verdict.Hops), so MaxHops stays the
// classifier's.
func classifierOptions(p *policy.Policy) classify.Options {
	return classify.Options{BodyLimit: p.BodyLimit}
}

// record adds an acted-on decision to the audit trail.
func (e *Engine) record(d *Decision, env *classify.Envelope, subject string) {
	e.store.Record(state.Event{
		QueueID: env.QueueID, Rule: d.Rule, Key: d.Key, Action: string(d.Action),
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

// reply builds the SMTP text of a reject or tempfail: the rule's own text,
// or one that tells the sender what was counted and for how long.
func reply(r *policy.Rule, d *Decision) string {
	enh := "5.7.1"
	if d.Action == policy.ActionTempfail {
		enh = "4.7.1"
	}
	if r != nil && r.SMTPText != "" {
		t := r.SMTPText
		if len(t) < 5 || !(t[0] == '4' || t[0] == '5') || t[1] != '.' {
			t = enh + " " + t
		} else if d.Action == policy.ActionTempfail && t[0] == '5' {
			t = "4" + t[1:]
		} else if d.Action == policy.ActionReject && t[0] == '4' {
			t = "5" + t[1:]
		}
		return t
	}
	var kinds string
	if r != nil {
		kinds = strings.Join(r.Kinds, "/")
	}
	s := fmt.Sprintf("%s loopbreaker: mail loop suspected: more than %d %s messages for %s in %s (rule %s)",
		enh, d.Limit, kinds, d.Key, d.Window, d.Rule)
	if !d.Until.IsZero() {
		s += "; blocked until " + d.Until.UTC().Format(time.RFC3339)
	}
	return s
}

func decodeSubject(s string) string {
	dec := mime.WordDecoder{CharsetReader: charset.Reader}
	if out, err := dec.DecodeHeader(s); err == nil {
		return out
	}
	return s
}

// CheckRecipient is the early check at RCPT TO, before the body is sent: a
// null-sender message (a bounce, RFC 5321 4.5.5) to a recipient whose key
// is already blocked by a bounce rule that rejects or tempfails is refused
// for that recipient alone. The refusal is counted on the block. Anything
// that needs the message itself to decide waits for end of message.
func (e *Engine) CheckRecipient(ctx context.Context, env classify.Envelope, rcpt string) Decision {
	d := Decision{}
	if env.Sender != "" {
		return d
	}
	p := e.policy.Load()
	env.Recipients = []string{rcpt}
	msg := &classify.Message{Envelope: env}
	v := classify.Verdict{Kind: classify.KindBounce}
	for i := range p.Rules {
		r := &p.Rules[i]
		if r.Action != policy.ActionReject && r.Action != policy.ActionTempfail {
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
			d.Action = r.Action
			d.Rule, d.Key, d.Count, d.Limit, d.Window = r.Name, key, res.Count, r.Limit, r.Window.D()
			d.Until, d.Acted = res.Block.Until, res.Block.Count
			d.Reply = reply(r, &d)
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

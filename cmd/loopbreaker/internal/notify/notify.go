// Package notify tells the admin when a block starts: one message per block,
// at most a configured number an hour (the rest summed up in one message
// when the hour is over), sent over SMTP through the local MTA.
//
// Admin mail must never feed a loop: it goes out from the null sender
// (RFC 5321 4.5.5) unless another sender is configured, and carries
// Auto-Submitted: auto-generated (RFC 3834 5), so no conforming responder
// or rule answers it.
package notify

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-smtp"

	"github.com/loopbreaker/loopbreaker/loopdetect/engine"
	"github.com/loopbreaker/loopbreaker/loopdetect/policy"
	"github.com/loopbreaker/loopbreaker/state"
)

// DefaultDelay is how long the notifier waits after a block starts before
// writing, so the message carries a few of the storm's subjects.
const DefaultDelay = 10 * time.Second

// Notice is one block to tell about.
type Notice struct {
	Rule, Key, Action, Kind string
	Count, Limit            int
	Window                  time.Duration
	Until                   time.Time
	Started                 time.Time
	// Monitor says the block started in monitor mode: Action is what
	// enforce mode would do; nothing is done.
	Monitor bool
}

// Notifier implements engine.Observer (only Decided does anything) and
// sends the mail from Run.
type Notifier struct {
	// Policy returns the policy in force (admin address, relay, rate).
	Policy func() *policy.Policy
	// Block looks a block up for its samples and count when writing.
	Block func(rule, key string) (state.Block, bool)
	Log   *slog.Logger
	// Delay: DefaultDelay when zero; negative means none (tests).
	Delay time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// ReleaseArgs are the flags the release command in the mail needs to
	// reach this daemon ("-admin SOCKET"), empty when the CLI finds it
	// without flags.
	ReleaseArgs string

	queue chan Notice
	// handled counts notices taken from the queue (sent, held or failed).
	handled atomic.Int64
}

var _ engine.Observer = (*Notifier)(nil)

// Start makes the queue; call before the engine decides anything.
func (n *Notifier) Start() *Notifier {
	n.queue = make(chan Notice, 256)
	if n.Now == nil {
		n.Now = time.Now
	}
	if n.Delay == 0 {
		n.Delay = DefaultDelay
	}
	return n
}

// Decided queues a notice for a decision that started a block.
func (n *Notifier) Decided(d *engine.Decision, _ time.Duration) {
	if !d.NewBlock || n.Policy().AdminAddress == "" {
		return
	}
	p := n.Policy()
	ntc := Notice{Rule: d.Rule, Key: d.Key, Action: string(d.Settled()), Kind: string(d.Verdict.Kind),
		Count: d.Count, Limit: d.Limit, Window: d.Window, Until: d.Until, Started: n.Now(),
		Monitor: d.WouldAction != policy.ActionNone}
	select {
	case n.queue <- ntc:
	default:
		n.Log.Warn("admin mail queue full; notice dropped", "rule", d.Rule, "key", d.Key, "admin", p.AdminAddress)
	}
}

// Counted does nothing.
func (n *Notifier) Counted(time.Duration, error) {}

// Failed does nothing.
func (n *Notifier) Failed(string) {}

// Run sends notices until ctx ends. At most AdminMailsPerHour go out in any
// hour that starts with a message; the rest wait for the hour's end and go
// out together in one summary.
func (n *Notifier) Run(ctx context.Context) {
	var r rate
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			n.flushSummary(ctx, &r, now)
		case ntc := <-n.queue:
			n.handle(ctx, &r, ntc)
			n.handled.Add(1)
		}
	}
}

// rate is Run's hourly budget.
type rate struct {
	hourStart  time.Time
	sent       int
	suppressed []Notice
}

// flushSummary sends the held notices once their hour is over.
func (n *Notifier) flushSummary(ctx context.Context, r *rate, now time.Time) {
	if len(r.suppressed) == 0 || now.Before(r.hourStart.Add(time.Hour)) {
		return
	}
	if err := n.send(ctx, summary(r.suppressed, n.Policy(), n.ReleaseArgs)); err != nil {
		n.Log.Error("admin mail summary not sent", "blocks", len(r.suppressed), "err", err)
	}
	r.hourStart, r.sent, r.suppressed = now, 1, nil
}

func (n *Notifier) handle(ctx context.Context, r *rate, ntc Notice) {
	if n.Delay > 0 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(n.Delay):
		}
	}
	now := n.Now()
	n.flushSummary(ctx, r, now)
	if r.hourStart.IsZero() || !now.Before(r.hourStart.Add(time.Hour)) {
		r.hourStart, r.sent = now, 0
	}
	p := n.Policy()
	if r.sent >= p.AdminMailsPerHour {
		r.suppressed = append(r.suppressed, ntc)
		return
	}
	b, _ := n.Block(ntc.Rule, ntc.Key)
	if err := n.send(ctx, blockMail(ntc, b, p, n.ReleaseArgs)); err != nil {
		n.Log.Error("admin mail not sent", "rule", ntc.Rule, "key", ntc.Key, "relay", p.AdminRelay, "err", err)
		return
	}
	r.sent++
	n.Log.Info("admin told of the block", "rule", ntc.Rule, "key", ntc.Key, "admin", p.AdminAddress)
}

// mail is one message to send.
type mail struct {
	subject string
	body    string
}

func (n *Notifier) send(ctx context.Context, m mail) error {
	p := n.Policy()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", p.AdminRelay)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", p.AdminRelay, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	c := smtp.NewClient(conn)
	defer c.Close()
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	if err := c.Hello(host); err != nil {
		return err
	}
	if err := c.Mail(p.AdminFrom, nil); err != nil {
		return err
	}
	if err := c.Rcpt(p.AdminAddress, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(render(m, p, host, n.Now())); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// render writes the message (RFC 5322) with the auto-generated markers.
// go-message formats the fields: the addresses, the date, the Message-ID,
// the subject (RFC 2047 encoded when it is not ASCII) and the content type.
func render(m mail, p *policy.Policy, host string, now time.Time) []byte {
	from := &gomail.Address{Name: "loopbreaker", Address: "MAILER-DAEMON@" + host}
	if p.AdminFrom != "" {
		from.Address = p.AdminFrom
	}
	// A textproto.Header writes the field set last first (it prepends, as
	// trace fields are added), so the fields are set from the bottom up.
	var h gomail.Header
	h.Set("Content-Transfer-Encoding", "8bit")
	h.SetContentType("text/plain", map[string]string{"charset": "utf-8"})
	h.Set("MIME-Version", "1.0")
	h.Set("Precedence", "bulk")
	h.Set("X-Auto-Response-Suppress", "All")
	h.Set("Auto-Submitted", "auto-generated")
	h.SetMessageID(fmt.Sprintf("loopbreaker.%d@%s", now.UnixNano(), host))
	h.SetDate(now)
	h.SetSubject(m.subject)
	h.SetAddressList("To", []*gomail.Address{{Address: p.AdminAddress}})
	h.SetAddressList("From", []*gomail.Address{from})
	var b bytes.Buffer
	_ = textproto.WriteHeader(&b, h.Header.Header) // a bytes.Buffer takes every write
	b.WriteString(strings.ReplaceAll(strings.ReplaceAll(m.body, "\r\n", "\n"), "\n", "\r\n"))
	return b.Bytes()
}

// blockWords are the parts of a block's mail that differ between a block
// in force and one that monitor mode started (which does nothing).
type blockWords struct {
	intro   string // the opening paragraph
	action  string // the action line, with %s for the action and the end
	actedOn string // the label of the count of messages acted on
	note    string // the paragraph after the samples
}

// wordsFor returns the words of a block's mail in enforce or monitor mode.
func wordsFor(monitor bool) blockWords {
	if monitor {
		return blockWords{
			intro:   "loopbreaker runs in monitor mode: it would have started a block.\nNothing was done to any message; they were all delivered as usual.\n\n",
			action:  "Would:     %s every further such message until %s (in enforce mode)\n",
			actedOn: "Would have acted on:",
			note:    "The block is counted as in enforce mode: switching to enforce (mode = \"enforce\"\nin the policy, then loopbreaker reload) makes it act on the next such message.\n",
		}
	}
	return blockWords{
		intro:   "loopbreaker started a block.\n\n",
		action:  "Action:    %s, for every further such message until %s\n",
		actedOn: "Acted on: ",
		note:    "Ordinary mail of this key is not affected.\n",
	}
}

// blockMail tells of one block: the rule and key, what is done (or, in
// monitor mode, would be done) and how to lift it.
func blockMail(n Notice, b state.Block, p *policy.Policy, releaseArgs string) mail {
	w, subject := wordsFor(n.Monitor), fmt.Sprintf("[loopbreaker] blocked %s (rule %s)", n.Key, n.Rule)
	if n.Monitor {
		subject = fmt.Sprintf("[loopbreaker] monitor mode: would %s %s (rule %s); nothing done", n.Action, n.Key, n.Rule)
	}
	var s strings.Builder
	s.WriteString(w.intro)
	writeRuleLines(&s, n)
	fmt.Fprintf(&s, w.action, n.Action, n.Until.UTC().Format(time.RFC3339))
	if b.Count > 0 {
		fmt.Fprintf(&s, "%s %d message(s) so far\n", w.actedOn, b.Count)
	}
	writeSamples(&s, b)
	fmt.Fprintf(&s, "\n%s\nTo lift the block:\n  %s\n", w.note, ReleaseCommand(n.Key, n.Rule, releaseArgs))
	if n.Monitor {
		return mail{subject: subject, body: s.String()}
	}
	switch policy.Action(n.Action) {
	case policy.ActionQuarantine:
		fmt.Fprintf(&s, "\nThe messages are in the MTA's hold queue: postqueue -p lists them (marked !),\npostsuper -H QUEUEID releases one.\n")
	case policy.ActionRedirect:
		fmt.Fprintf(&s, "\nThe messages went to %s, with the original recipients in\nX-Loopbreaker-Original-Recipients.\n", p.QuarantineMailbox)
	}
	return mail{subject: subject, body: s.String()}
}

// writeRuleLines writes what the block is about: the rule, the key, the
// kind of mail and the limit it crossed.
func writeRuleLines(s *strings.Builder, n Notice) {
	fmt.Fprintf(s, "Rule:      %s\n", n.Rule)
	fmt.Fprintf(s, "Key:       %s\n", n.Key)
	fmt.Fprintf(s, "Kind:      %s\n", n.Kind)
	fmt.Fprintf(s, "Limit:     %d per %s, exceeded\n", n.Limit, n.Window)
}

func writeSamples(s *strings.Builder, b state.Block) {
	if len(b.Samples) > 0 {
		fmt.Fprintf(s, "\nSample subjects:\n")
		for _, sub := range b.Samples {
			fmt.Fprintf(s, "  %s\n", sub)
		}
	}
}

func summary(ns []Notice, p *policy.Policy, releaseArgs string) mail {
	sort.Slice(ns, func(i, j int) bool { return ns[i].Started.Before(ns[j].Started) })
	var s strings.Builder
	fmt.Fprintf(&s, "loopbreaker started %d more block(s) in the last hour than admin_mails_per_hour (%d) lets it write about:\n\n", len(ns), p.AdminMailsPerHour)
	for _, n := range ns {
		action := n.Action
		if n.Monitor {
			action = "monitor mode: would " + action + ", nothing done,"
		}
		fmt.Fprintf(&s, "  %s  %s  %s  (%s until %s)\n", n.Started.UTC().Format(time.RFC3339), n.Rule, n.Key, action, n.Until.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(&s, "\n%s lists what is still in force; %s lifts a block.\n",
		strings.TrimSpace("loopbreaker blocks "+releaseArgs), strings.TrimSpace("loopbreaker release KEY "+releaseArgs))
	return mail{subject: fmt.Sprintf("[loopbreaker] %d more blocks started", len(ns)), body: s.String()}
}

// ReleaseCommand is the shell command that lifts the block of rule on key.
func ReleaseCommand(key, rule, releaseArgs string) string {
	cmd := "loopbreaker release " + ShellQuote(key) + " -rule " + ShellQuote(rule)
	if releaseArgs != "" {
		cmd += " " + releaseArgs
	}
	return cmd
}

// ShellQuote quotes s for a POSIX shell when it needs it.
func ShellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@._+-=/:,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

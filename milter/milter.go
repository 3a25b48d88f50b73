// Package milter connects loopbreaker's engine to an MTA over the milter
// protocol (Sendmail's libmilter protocol, version 6, as Postfix and
// Sendmail speak it), using github.com/d--j/go-milter.
//
// It only translates between the protocol and the engine and applies the
// engine's decision: it gathers the envelope, where the message came from
// (an SMTP client or none), the headers and the policy's body_limit of the
// body into the engine's input, asks the engine.Engine at RCPT TO and at
// end of message, and carries the Decision out as a reply and
// modifications. It decides nothing itself; the one exception is a
// modification the MTA refuses, which has its own fallback (onRefusal in
// apply.go).
package milter

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	gomilter "github.com/d--j/go-milter"
	"github.com/emersion/go-message/textproto"

	"github.com/loopbreaker/loopbreaker/loopdetect/classify"
	"github.com/loopbreaker/loopbreaker/loopdetect/engine"
	"github.com/loopbreaker/loopbreaker/loopdetect/policy"
)

// Limits on what one message may make us hold, whatever the MTA sends.
const (
	maxHeaderBytes  = 1 << 20
	maxHeaderFields = 10000
)

// Actions are the modifications loopbreaker asks for (SMFIF_*): add a
// header (tag, redirect), add and delete recipients (redirect), quarantine.
const Actions = gomilter.OptAddHeader | gomilter.OptAddRcpt | gomilter.OptRemoveRcpt | gomilter.OptQuarantine

// Protocol lists the events loopbreaker does not need, and the replies it
// does not send, so the MTA skips them (SMFIP_*). It needs MAIL, RCPT, the
// headers and the start of the body; it answers RCPT (to refuse a blocked
// recipient early, and to return Continue, never Accept, which would end
// its part in the message) and body chunks (to skip the rest of a long body).
const Protocol = gomilter.OptNoConnect | gomilter.OptNoHelo | gomilter.OptNoData | gomilter.OptNoUnknown |
	gomilter.OptNoEOH | gomilter.OptNoHeaderReply | gomilter.OptNoMailReply | gomilter.OptSkip

// macroClientPort is the SMTP client's TCP port ({client_port}, Sendmail
// 8.13 and Postfix 2.5 and later).
const macroClientPort gomilter.MacroName = "{client_port}"

// macroNone is a macro name no MTA defines, requested for the stages that
// need no macros.
const macroNone gomilter.MacroName = "{loopbreaker_none}"

// Defaults for Options.
const (
	// DefaultMaxSessions caps concurrent MTA connections. Postfix opens one
	// per SMTP session (default_process_limit is 100 smtpd processes).
	DefaultMaxSessions = 1000
	// DefaultIdleTimeout closes a connection on which the MTA sent nothing
	// for that long. It must exceed the MTA's own idle limits: Postfix's
	// smtpd_timeout is 300 s and its milter connection lives as long as the
	// SMTP session.
	DefaultIdleTimeout = 10 * time.Minute
)

// Options tune a Server. The zero value takes the defaults.
type Options struct {
	// MaxSessions caps concurrent connections; negative means no cap.
	MaxSessions int
	// IdleTimeout bounds the wait for the MTA's next packet; negative means none.
	IdleTimeout time.Duration
}

// Server is a milter server in front of an engine.
type Server struct {
	srv    *gomilter.Server
	engine *engine.Engine
	log    *slog.Logger
	slots  chan struct{}
}

// NewServer returns a server that decides with engine.
func NewServer(engine *engine.Engine, log *slog.Logger, opts Options) *Server {
	if log == nil {
		log = slog.Default()
	}
	if opts.MaxSessions == 0 {
		opts.MaxSessions = DefaultMaxSessions
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	s := &Server{engine: engine, log: log}
	if opts.MaxSessions > 0 {
		s.slots = make(chan struct{}, opts.MaxSessions)
	}
	var readTimeout time.Duration
	if opts.IdleTimeout > 0 {
		readTimeout = opts.IdleTimeout
	}
	s.srv = gomilter.NewServer(
		gomilter.WithReadTimeout(readTimeout),
		gomilter.WithDynamicMilter(func(version uint32, action gomilter.OptAction, protocol gomilter.OptProtocol, _ gomilter.DataSize) gomilter.Milter {
			return &session{engine: engine, log: log, protocol: protocol}
		}),
		gomilter.WithActions(Actions),
		gomilter.WithProtocols(Protocol),
		gomilter.WithNegotiationCallback(negotiate(log)),
		gomilter.WithMacroRequest(gomilter.StageMail, []gomilter.MacroName{gomilter.MacroAuthAuthen, gomilter.MacroClientAddr, macroClientPort}),
		gomilter.WithMacroRequest(gomilter.StageEOM, []gomilter.MacroName{gomilter.MacroQueueId}),
		// The other stages get no macros: by default Postfix sends a dozen
		// per stage (milter_connect_macros, ...), which costs it CPU for
		// nothing we read. go-milter sends no empty list, so a name no MTA
		// defines stands for "none" (docs/benchmarks.md, section 3).
		gomilter.WithMacroRequest(gomilter.StageConnect, []gomilter.MacroName{macroNone}),
		gomilter.WithMacroRequest(gomilter.StageHelo, []gomilter.MacroName{macroNone}),
		gomilter.WithMacroRequest(gomilter.StageRcpt, []gomilter.MacroName{macroNone}),
		gomilter.WithMacroRequest(gomilter.StageData, []gomilter.MacroName{macroNone}),
		gomilter.WithMacroRequest(gomilter.StageEOH, []gomilter.MacroName{macroNone}),
	)
	return s
}

// negotiate takes what both sides offer instead of failing the connection
// when an older MTA lacks an option: the milter then runs with less (a
// missing quarantine action is logged, and the milter falls back when it
// carries a quarantine out: see onRefusal).
func negotiate(log *slog.Logger) gomilter.NegotiationCallbackFunc {
	return func(mtaVersion, milterVersion uint32, mtaActions, milterActions gomilter.OptAction, mtaProtocol, milterProtocol gomilter.OptProtocol, offered gomilter.DataSize) (uint32, gomilter.OptAction, gomilter.OptProtocol, gomilter.DataSize, error) {
		version := min(mtaVersion, milterVersion)
		if version < 2 {
			return 0, 0, 0, 0, fmt.Errorf("milter: MTA speaks protocol version %d, need at least 2", mtaVersion)
		}
		actions := milterActions & mtaActions
		if missing := milterActions &^ mtaActions; missing != 0 {
			log.Warn("MTA does not offer some actions; the policy's matching actions fall back", "missing", missing.String())
		}
		if milterActions&gomilter.OptSetMacros != 0 && mtaActions&gomilter.OptSetMacros != 0 {
			actions |= gomilter.OptSetMacros
		}
		return version, actions, milterProtocol & mtaProtocol, offered, nil
	}
}

// Serve accepts milter connections on ln until Shutdown. Every connection is
// guarded against invalid framing before the library reads it.
func (s *Server) Serve(ln net.Listener) error {
	err := s.srv.Serve(newGuardListener(ln, s.log, s.slots))
	if errors.Is(err, gomilter.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting and waits for the sessions in progress, until ctx
// ends; then it closes them.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// session is one MTA connection; it may carry several messages.
type session struct {
	gomilter.NoOpMilter
	engine   *engine.Engine
	log      *slog.Logger
	protocol gomilter.OptProtocol

	env         classify.Envelope
	header      textproto.Header
	headerBytes int
	headerCut   bool
	body        []byte
	bodyCut     bool
	bodyLimit   int
	// origin says whether an SMTP client sent the message. See MailFrom.
	origin engine.Origin
}

func (s *session) reset() {
	s.env = classify.Envelope{}
	s.header = textproto.Header{}
	s.headerBytes, s.headerCut = 0, false
	s.body, s.bodyCut = nil, false
	s.bodyLimit = s.engine.Policy().BodyLimit
}

func (s *session) MailFrom(from string, _ string, m gomilter.Modifier) (*gomilter.Response, error) {
	s.reset()
	s.env.Sender = from
	s.env.AuthUser = m.Get(gomilter.MacroAuthAuthen)
	s.env.ClientIP = strings.Trim(m.Get(gomilter.MacroClientAddr), "[]")
	// For mail that had no SMTP client (its own bounces, the sendmail
	// command) Postfix's cleanup makes up a client "localhost
	// [127.0.0.1]" on port 0 (seen with Postfix 3.7 and
	// non_smtpd_milters); a real SMTP client always has a port. An MTA
	// that sends no port is taken for SMTP, as before.
	s.origin = engine.FromSMTPClient
	if m.Get(macroClientPort) == "0" {
		s.origin = engine.WithoutSMTPClient
	}
	return gomilter.RespContinue, nil
}

// RcptTo records the recipient, or refuses it when the engine says so (a
// bounce storm to a blocked recipient: see engine.CheckRecipient, which
// also knows that mail without an SMTP client is never refused here). It
// returns Continue, never Accept: Accept here would end the milter's part in
// the message, and with it the chance to act at end of message.
func (s *session) RcptTo(rcpt string, _ string, m gomilter.Modifier) (*gomilter.Response, error) {
	if s.env.Sender == "" {
		d := s.engine.CheckRecipient(context.Background(), s.origin, s.env, rcpt)
		if d.Action != policy.ActionNone {
			s.log.Info("refused at RCPT", "action", string(d.Action), "rule", d.Rule, "key", d.Key,
				"count", d.Count, "limit", d.Limit, "sender", "<>", "recipient", rcpt)
			return refuse(d.Action, d.ReplyCode, d.Reply, s.log), nil
		}
	}
	s.env.Recipients = append(s.env.Recipients, rcpt)
	return gomilter.RespContinue, nil
}

func (s *session) Header(name, value string, _ gomilter.Modifier) (*gomilter.Response, error) {
	s.headerBytes += len(name) + len(value) + 4
	if s.headerBytes > maxHeaderBytes || s.header.Len() >= maxHeaderFields {
		s.headerCut = true
		return gomilter.RespContinue, nil
	}
	s.header.Add(name, unfold(strings.TrimLeft(value, " \t")))
	return gomilter.RespContinue, nil
}

// unfold removes the line breaks of a folded header value (RFC 5322
// 2.2.3): the MTA passes them on as they were in the message.
func unfold(v string) string {
	if !strings.ContainsAny(v, "\r\n") {
		return v
	}
	return lineBreaks.Replace(v)
}

// lineBreaks removes CRLF, LF and CR; a Replacer is safe for concurrent use.
var lineBreaks = strings.NewReplacer("\r\n", "", "\n", "", "\r", "")

func (s *session) BodyChunk(chunk []byte, _ gomilter.Modifier) (*gomilter.Response, error) {
	room := s.bodyLimit - len(s.body)
	if room > 0 {
		if len(chunk) > room {
			chunk = chunk[:room]
			s.bodyCut = true
		}
		s.body = append(s.body, chunk...)
	} else {
		s.bodyCut = true
	}
	if s.bodyCut && s.protocol&gomilter.OptSkip != 0 {
		return gomilter.RespSkip, nil
	}
	return gomilter.RespContinue, nil
}

func (s *session) Abort(_ gomilter.Modifier) error {
	s.reset()
	return nil
}

func (s *session) EndOfMessage(m gomilter.Modifier) (resp *gomilter.Response, err error) {
	start := time.Now()
	env := s.env
	env.QueueID = m.Get(gomilter.MacroQueueId)
	ctx := context.Background()
	log := s.log.With("queue_id", env.QueueID)
	defer func() {
		// Nothing a message contains may take the daemon down or get
		// ordinary mail refused: a failure here accepts the message.
		if r := recover(); r != nil {
			log.Error("decision failed; accepting the message", "panic", fmt.Sprint(r))
			s.engine.Failed("milter")
			resp, err = gomilter.RespAccept, nil
		}
		s.reset()
	}()
	msg := &classify.Message{Envelope: env, Header: s.header, Body: s.body, BodyTruncated: s.bodyCut}
	d := s.engine.DecideFrom(ctx, s.origin, msg)
	resp, done := apply(m, &d, &env, log, s.engine.Failed)
	logDecision(ctx, log, &d, done, &env, s.headerCut, time.Since(start))
	return resp, nil
}

// logDecision logs the decision and, when the MTA refused a modification,
// the action done instead.
func logDecision(ctx context.Context, log *slog.Logger, d *engine.Decision, done policy.Action, env *classify.Envelope, headerCut bool, took time.Duration) {
	attrs := []any{
		"kind", string(d.Verdict.Kind), "sender", env.Sender, "recipients", len(env.Recipients),
		"took", took.Round(time.Microsecond),
	}
	if headerCut {
		attrs = append(attrs, "header_truncated", true)
	}
	if d.Verdict.OriginalMessageID != "" {
		attrs = append(attrs, "original_message_id", d.Verdict.OriginalMessageID)
	}
	if d.WouldAction != policy.ActionNone {
		// Monitor mode: nothing was done; say what enforce would have done.
		attrs = append(attrs, "mode", string(d.Mode), "action", "none", "would_action", string(d.WouldAction), "rule", d.Rule, "key", d.Key,
			"count", d.Count, "limit", d.Limit, "window", d.Window, "evidence", d.Verdict.Explain())
		if d.Fallback != "" {
			attrs = append(attrs, "rule_action", string(d.RuleAction), "fallback", d.Fallback)
		}
		if d.NewBlock {
			log.WarnContext(ctx, "block started (monitor mode: nothing done)", append(attrs, "until", d.Until.UTC().Format(time.RFC3339))...)
			return
		}
		log.InfoContext(ctx, "would have acted (monitor mode: nothing done)", attrs...)
		return
	}
	if d.Action == policy.ActionNone {
		if len(d.Hits) > 0 || len(d.Monitored) > 0 || d.Verdict.Kind != classify.KindOrdinary {
			for _, h := range d.Hits {
				attrs = append(attrs, "rule_"+h.Rule, fmt.Sprintf("%d/%d", h.Count, h.Limit))
			}
			if len(d.Monitored) > 0 {
				attrs = append(attrs, "monitor_over_limit", strings.Join(d.Monitored, ","))
			}
			log.InfoContext(ctx, "pass", append(attrs, "evidence", d.Verdict.Explain())...)
			return
		}
		log.DebugContext(ctx, "pass", attrs...)
		return
	}
	attrs = append(attrs, "action", string(d.Action), "rule", d.Rule, "key", d.Key,
		"count", d.Count, "limit", d.Limit, "window", d.Window, "evidence", d.Verdict.Explain())
	if d.Fallback != "" {
		attrs = append(attrs, "rule_action", string(d.RuleAction), "fallback", d.Fallback)
	}
	if done != d.Action {
		attrs = append(attrs, "done", cmp.Or(string(done), "none"))
	}
	if d.NewBlock {
		log.WarnContext(ctx, "block started", append(attrs, "until", d.Until.UTC().Format(time.RFC3339))...)
		return
	}
	log.InfoContext(ctx, "acted", attrs...)
}

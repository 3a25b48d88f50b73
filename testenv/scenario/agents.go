package scenario

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv"
	"github.com/loopbreaker/loopbreaker/testenv/smtpsink"
)

// Step kinds taken from a Budget.
const (
	StepForward   = "forward"
	StepNDR       = "ndr"
	StepAutoReply = "auto-reply"
)

// An agent acts on the messages delivered to one mailbox, the way a mailbox
// rule or an auto-responder of a mail server does: by submitting a new
// message over SMTP. To the MTA it is the user sending mail.
type agent struct {
	name    string
	mailbox string
	in      chan smtpsink.Message
	act     func(ctx context.Context, m smtpsink.Message)
}

// SubmitFunc hands a message to the MTA named via over SMTP; by names who
// sends it and kind what it is ("forward", "auto-reply", ...), for the
// record.
type SubmitFunc func(ctx context.Context, by, via, kind, from string, to []string, msg []byte) error

// Agents runs the mailbox agents of a set of mailstores: Deliver (a
// smtpsink.OnMessage hook) hands each delivered message to the agents of
// its recipients. Every loop step an agent takes comes out of the Budget.
type Agents struct {
	submit SubmitFunc
	budget *Budget

	mu     sync.Mutex
	byBox  map[string][]*agent
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
}

// NewAgents returns agents that submit through submit and take their loop
// steps from budget.
func NewAgents(budget *Budget, submit SubmitFunc) *Agents {
	a := &Agents{submit: submit, budget: budget, byBox: map[string][]*agent{}}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	return a
}

// Stop stops the agents and waits for the ones at work.
func (a *Agents) Stop() {
	a.cancel()
	a.wg.Wait()
}

var msgSeq atomic.Int64

// newMessageID makes a Message-ID whose left part names what made it.
func newMessageID(what, domain string) string {
	return fmt.Sprintf("<%s.%d.%d@%s>", what, msgSeq.Add(1), time.Now().UnixNano(), domain)
}

// AddForwardRule gives user the mailbox rule of incident 1: every message
// delivered to user is forwarded, as a new message from user "FW:
// <subject>" with the original quoted inline the way Outlook does, to
// target. It submits through the MTA named via.
func (a *Agents) AddForwardRule(user, target, via string) {
	a.add(&agent{name: "rule:" + user, mailbox: user, act: func(ctx context.Context, m smtpsink.Message) {
		if !a.budget.Take(StepForward) {
			return
		}
		kind := "forward"
		if m.From == "" {
			kind = "forwarded-ndr" // what the rule forwards is a report
		}
		_ = a.submit(ctx, "rule:"+user, via, kind, user, []string{target}, forwardInline(user, target, m))
	}})
}

// AddOutOfOffice gives user an out-of-office responder that answers every
// message, Exchange style: "Automatic reply: <subject>", Auto-Submitted:
// auto-replied, sent from the null reverse path (RFC 3834) to the envelope
// sender, through the MTA named via. It does not remember whom it
// answered, and it answers auto-replies too: that is the bug that starts a
// ping-pong.
func (a *Agents) AddOutOfOffice(user, via string) {
	a.add(&agent{name: "oof:" + user, mailbox: user, act: func(ctx context.Context, m smtpsink.Message) {
		if m.From == "" || !a.budget.Take(StepAutoReply) {
			return
		}
		subj := "Automatic reply: " + headerOr(m, "Subject", "")
		msg := testenv.Message([][2]string{
			{"From", user},
			{"To", m.From},
			{"Subject", subj},
			{"Date", time.Now().UTC().Format(time.RFC1123Z)},
			{"Message-ID", newMessageID("oof", HubDomain)},
			{"In-Reply-To", headerOr(m, "Message-Id", "")},
			{"Auto-Submitted", "auto-replied"},
			{"X-Auto-Response-Suppress", "All"},
			{"MIME-Version", "1.0"},
			{"Content-Type", "text/plain; charset=utf-8"},
		}, "I am out of the office until Monday 30 November with no access to e-mail.\n"+
			"For urgent matters please contact the service desk.\n")
		_ = a.submit(ctx, "oof:"+user, via, "auto-reply", "", []string{m.From}, msg)
	}})
}

var ticketTag = regexp.MustCompile(`\[Ticket#\d+\]\s*`)

// AddHelpdesk makes user a helpdesk that acknowledges every message with a
// new ticket, the way ticket systems do: it answers the From: header, from
// its own address, "[Ticket#N] <subject>", marked only with Precedence:
// auto_reply and X-Loop (no Auto-Submitted). It submits through the MTA
// named via.
func (a *Agents) AddHelpdesk(user, via string) {
	var ticket atomic.Int64
	ticket.Store(2026112310000000)
	a.add(&agent{name: "helpdesk:" + user, mailbox: user, act: func(ctx context.Context, m smtpsink.Message) {
		to := m.From
		if a, err := mail.ParseAddress(headerOr(m, "From", "")); err == nil {
			to = a.Address
		}
		if to == "" || strings.EqualFold(to, user) || !a.budget.Take(StepAutoReply) {
			return
		}
		subj := ticketTag.ReplaceAllString(headerOr(m, "Subject", ""), "")
		if len(subj) > 200 {
			subj = subj[:200]
		}
		n := ticket.Add(1)
		msg := testenv.Message([][2]string{
			{"From", "Helpdesk <" + user + ">"},
			{"To", to},
			{"Subject", fmt.Sprintf("[Ticket#%d] %s", n, subj)},
			{"Date", time.Now().UTC().Format(time.RFC1123Z)},
			{"Message-ID", newMessageID("ack", OutsideDomain)},
			{"In-Reply-To", headerOr(m, "Message-Id", "")},
			{"Precedence", "auto_reply"},
			{"X-Loop", user},
			{"MIME-Version", "1.0"},
			{"Content-Type", "text/plain; charset=utf-8"},
		}, fmt.Sprintf("Thank you for contacting the helpdesk. Your request has been received\n"+
			"and assigned ticket number %d. An agent will get back to you shortly.\n\n"+
			"Please keep the ticket number in the subject of any reply.\n", n))
		_ = a.submit(ctx, "helpdesk:"+user, via, "auto-reply", user, []string{to}, msg)
	}})
}

func (a *Agents) add(ag *agent) {
	ag.in = make(chan smtpsink.Message, 4096)
	box := strings.ToLower(ag.mailbox)
	a.mu.Lock()
	a.byBox[box] = append(a.byBox[box], ag)
	a.mu.Unlock()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for {
			select {
			case <-a.ctx.Done():
				return
			case m := <-ag.in:
				ag.act(a.ctx, m)
			}
		}
	}()
}

// Deliver hands a delivered message to the agents of its recipients; use
// it as a smtpsink.OnMessage hook.
func (a *Agents) Deliver(m smtpsink.Message) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, rcpt := range m.To {
		for _, ag := range a.byBox[strings.ToLower(rcpt)] {
			select {
			case ag.in <- m:
			default: // a full inbox: the budget keeps this from happening
			}
		}
	}
}

// forwardInline builds what an Outlook rule "forward to" sends: a new
// message from user, the original's first text part quoted inline below
// Outlook's header block.
func forwardInline(user, target string, m smtpsink.Message) []byte {
	subj := headerOr(m, "Subject", "")
	from := headerOr(m, "From", "<"+m.From+">")
	sent := headerOr(m, "Date", "")
	if t, err := mail.ParseDate(sent); err == nil {
		sent = t.Format("Monday, January 2, 2006 3:04 PM")
	}
	var body strings.Builder
	body.WriteString("\n\n________________________________\n")
	fmt.Fprintf(&body, "From: %s\nSent: %s\nTo: %s\nSubject: %s\n\n", from, sent, headerOr(m, "To", user), subj)
	body.WriteString(firstText(m.Data))
	return testenv.Message([][2]string{
		{"From", user},
		{"To", target},
		{"Subject", "FW: " + subj},
		{"Date", time.Now().UTC().Format(time.RFC1123Z)},
		{"Message-ID", newMessageID("fw", HubDomain)},
		{"MIME-Version", "1.0"},
		{"Content-Type", "text/plain; charset=utf-8"},
		{"X-MS-Exchange-Inbox-Rules-Loop", user},
	}, body.String())
}

func headerOr(m smtpsink.Message, key, def string) string {
	if m.Header == nil {
		return def
	}
	if v := m.Header.Get(key); v != "" {
		return v
	}
	return def
}

// parseHeader parses a raw message's header (nil-safe Get on failure).
func parseHeader(raw []byte) mail.Header {
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return mail.Header{}
	}
	return m.Header
}

// firstText returns the first text/plain part of a message, decoded, as
// a mail client would show it.
func firstText(raw []byte) string {
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return ""
	}
	text, _ := textPart(m.Header.Get("Content-Type"), m.Header.Get("Content-Transfer-Encoding"), m.Body, 0)
	return strings.ReplaceAll(text, "\r\n", "\n")
}

func textPart(ctype, cte string, body io.Reader, depth int) (string, bool) {
	mt, params, err := mime.ParseMediaType(ctype)
	if ctype == "" || err != nil {
		mt = "text/plain"
	}
	switch {
	case strings.HasPrefix(mt, "multipart/") && depth < 5:
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err != nil {
				return "", false
			}
			if s, ok := textPart(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p, depth+1); ok {
				return s, true
			}
		}
	case mt == "text/plain":
		var r io.Reader = body
		switch strings.ToLower(strings.TrimSpace(cte)) {
		case "quoted-printable":
			r = quotedprintable.NewReader(body)
		case "base64":
			r = base64.NewDecoder(base64.StdEncoding, body) // skips CR and LF
		}
		b, _ := io.ReadAll(io.LimitReader(r, 64<<10))
		return string(b), true
	}
	return "", false
}

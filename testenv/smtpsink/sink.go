// Package smtpsink provides a loopback SMTP server for tests that accepts
// (almost) every message and records it.
//
// A Sink stands in for a mail store or an outside MTA next to a Postfix test
// instance: point Postfix's transport_maps or relayhost at
// "[127.0.0.1]:PORT" and assert on Messages after delivery.
package smtpsink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/mail"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Message is one message delivered to a Sink: one SMTP transaction, with all
// of its accepted recipients.
type Message struct {
	// From is the envelope sender (MAIL FROM); empty for the null sender <>.
	From string
	// To holds the accepted envelope recipients (RCPT TO), in order.
	To []string
	// Data is the message as received, headers and body, with CRLF line
	// endings and dot-stuffing removed.
	Data []byte
	// Header is Data's parsed header, or nil if Data does not parse as an
	// RFC 5322 message. Use Header.Get("Subject") and the like.
	Header mail.Header
	// Subject is Header.Get("Subject"), undecoded.
	Subject string
	// Received is when the sink accepted the message.
	Received time.Time
}

// Option configures a Sink at Start.
type Option func(*Sink)

// RejectRecipients makes the sink answer
// "550 5.1.1 <addr>: Recipient address rejected: User unknown" to each
// RCPT TO:<addr> for which reject returns true, like an outside MTA that has
// no such user. reject may be called from several goroutines at once.
func RejectRecipients(reject func(addr string) bool) Option {
	return func(s *Sink) { s.reject = reject }
}

// OnMessage makes the sink call fn with each message it accepts, after
// recording it and before answering the end of DATA. fn runs in the SMTP
// session's goroutine (several at once when connections overlap) and should
// return quickly: hand the message to a goroutine of your own to act on it.
// fn must not modify the message (it shares Data with the recorded copy).
func OnMessage(fn func(Message)) Option {
	return func(s *Sink) { s.onMessage = fn }
}

// Discard makes the sink keep no message: Messages and Count stay empty
// and WaitCount waits in vain; OnMessage's fn is the only one to see them.
// For long runs (the soak) that count messages on their own.
func Discard() Option {
	return func(s *Sink) { s.discard = true }
}

// Listen makes the sink listen on addr ("host:port", e.g. ":25" in a
// container) instead of a free port on 127.0.0.1.
func Listen(addr string) Option {
	return func(s *Sink) { s.listenAddr = addr }
}

// Sink is a running loopback SMTP server that records every message it
// accepts. Its methods may be called from several goroutines.
type Sink struct {
	name string
	srv  *smtp.Server
	ln   net.Listener
	done chan struct{} // closed when Serve returns

	mu      sync.Mutex
	msgs    []Message
	changed chan struct{} // closed and replaced whenever msgs changes
	reject  func(addr string) bool
	closed  bool

	onMessage  func(Message)
	discard    bool
	listenAddr string

	closeOnce sync.Once
	closeErr  error
}

// Start starts a sink listening on 127.0.0.1 on a free port (see Listen). name appears in
// the SMTP greeting and in errors. ctx bounds only the start; the sink runs
// until Close.
func Start(ctx context.Context, name string, opts ...Option) (*Sink, error) {
	s := &Sink{
		name:    name,
		done:    make(chan struct{}),
		changed: make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	addr := "127.0.0.1:0"
	if s.listenAddr != "" {
		addr = s.listenAddr
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp4", addr)
	if err != nil {
		return nil, fmt.Errorf("smtpsink %s: listen: %w", name, err)
	}
	s.ln = ln

	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &session{sink: s}, nil
	}))
	srv.Domain = name
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.MaxMessageBytes = 64 << 20
	srv.AllowInsecureAuth = true
	srv.ErrorLog = log.New(io.Discard, "", 0)
	s.srv = srv

	go func() {
		defer close(s.done)
		_ = srv.Serve(ln) // returns nil after Close
	}()
	return s, nil
}

// MustStart starts a sink for a test and closes it when the test ends. It
// fails the test if the sink cannot start.
func MustStart(tb testing.TB, name string, opts ...Option) *Sink {
	tb.Helper()
	s, err := Start(tb.Context(), name, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("close smtpsink %s: %v", name, err)
		}
	})
	return s
}

// Name returns the name given to Start.
func (s *Sink) Name() string { return s.name }

// Addr returns the listening address, "127.0.0.1:PORT".
func (s *Sink) Addr() string { return s.ln.Addr().String() }

// Port returns the listening TCP port.
func (s *Sink) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// Nexthop returns the address in Postfix next-hop syntax, "[127.0.0.1]:PORT"
// (brackets: no MX lookup), for relayhost or a transport_maps entry such as
// "smtp:" + s.Nexthop().
func (s *Sink) Nexthop() string {
	host := "127.0.0.1"
	if a, ok := s.ln.Addr().(*net.TCPAddr); ok && !a.IP.IsUnspecified() {
		host = a.IP.String()
	}
	return "[" + host + "]:" + strconv.Itoa(s.Port())
}

// SetRejectRecipients replaces the recipient filter set with RejectRecipients;
// nil accepts every recipient. It affects RCPT commands from now on.
func (s *Sink) SetRejectRecipients(reject func(addr string) bool) {
	s.mu.Lock()
	s.reject = reject
	s.mu.Unlock()
}

// Messages returns a copy of the messages received so far, in arrival order.
func (s *Sink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.msgs))
	for i, m := range s.msgs {
		m.To = append([]string(nil), m.To...)
		m.Data = bytes.Clone(m.Data)
		if m.Header != nil {
			h := make(mail.Header, len(m.Header))
			for k, v := range m.Header {
				h[k] = append([]string(nil), v...)
			}
			m.Header = h
		}
		out[i] = m
	}
	return out
}

// Count returns the number of messages received so far.
func (s *Sink) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// WaitCount blocks until at least n messages have been received, or ctx is
// done, or the sink is closed. On ctx expiry the error says how many messages
// arrived.
func (s *Sink) WaitCount(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		got, ch, closed := len(s.msgs), s.changed, s.closed
		s.mu.Unlock()
		if got >= n {
			return nil
		}
		if closed {
			return fmt.Errorf("smtpsink %s: closed with %d of %d messages", s.name, got, n)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("smtpsink %s: waiting for %d messages, have %d: %w", s.name, n, got, ctx.Err())
		}
	}
}

// Reset forgets the messages received so far.
func (s *Sink) Reset() {
	s.mu.Lock()
	s.msgs = nil
	s.notifyLocked()
	s.mu.Unlock()
}

// Close stops the sink: it stops listening, drops open connections and
// waits for the server to finish. Messages stay readable. Close is
// idempotent.
func (s *Sink) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.notifyLocked()
		s.mu.Unlock()

		err := s.srv.Close()
		<-s.done
		if err != nil && !errors.Is(err, smtp.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			s.closeErr = fmt.Errorf("smtpsink %s: close: %w", s.name, err)
		}
	})
	return s.closeErr
}

// notifyLocked wakes WaitCount callers. s.mu must be held.
func (s *Sink) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Sink) add(m Message) {
	if s.discard {
		return
	}
	s.mu.Lock()
	s.msgs = append(s.msgs, m)
	s.notifyLocked()
	s.mu.Unlock()
}

func (s *Sink) rejects(addr string) bool {
	s.mu.Lock()
	reject := s.reject
	s.mu.Unlock()
	return reject != nil && reject(addr)
}

// session is one SMTP connection to a Sink.
type session struct {
	sink *Sink
	from string
	to   []string
}

var _ smtp.Session = (*session)(nil)

func (ss *session) Reset() {
	ss.from = ""
	ss.to = nil
}

func (ss *session) Logout() error { return nil }

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	ss.from = from
	ss.to = nil
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if ss.sink.rejects(to) {
		return &smtp.SMTPError{
			Code:         550,
			EnhancedCode: smtp.EnhancedCode{5, 1, 1},
			Message:      fmt.Sprintf("<%s>: Recipient address rejected: User unknown", to),
		}
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("read message: %w", err)
	}
	m := Message{
		From:     ss.from,
		To:       append([]string(nil), ss.to...),
		Data:     data,
		Received: time.Now(),
	}
	if pm, err := mail.ReadMessage(bytes.NewReader(data)); err == nil {
		m.Header = pm.Header
		m.Subject = pm.Header.Get("Subject")
	}
	ss.sink.add(m)
	if fn := ss.sink.onMessage; fn != nil {
		fn(m)
	}
	return nil
}

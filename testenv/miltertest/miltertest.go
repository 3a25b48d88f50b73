// Package miltertest plays the MTA's side of one milter session with
// go-milter's client, the way Postfix's smtpd does: connect, HELO, MAIL,
// RCPT, DATA, the headers, the end of headers and the body. Tests of the
// milter, of the command and of the monitoring rules use it to put messages
// through a running daemon.
package miltertest

import (
	"fmt"
	"net"
	"strings"
	"time"

	gomilter "github.com/d--j/go-milter"
)

// AllActions is every modification loopbreaker may ask for, and a few more,
// as Postfix offers them.
const AllActions = gomilter.OptAddHeader | gomilter.OptAddRcpt | gomilter.OptRemoveRcpt |
	gomilter.OptQuarantine | gomilter.OptChangeHeader | gomilter.OptSetMacros

// Message is what the MTA passes through one session.
type Message struct {
	From    string
	Rcpts   []string
	Headers [][2]string
	Body    string
}

// MTA says how the MTA side behaves. The zero value is Postfix's smtpd over
// TCP offering AllActions, with {client_addr} 192.0.2.1 and 10 s timeouts.
type MTA struct {
	// Network is "tcp" (the default) or "unix".
	Network string
	// Actions are the modifications offered; 0 means AllActions.
	Actions gomilter.OptAction
	// Macros are sent with the session; nil means {client_addr} 192.0.2.1.
	Macros *gomilter.MacroBag
	// Timeout bounds the dial and each read and write; 0 means 10 s.
	Timeout time.Duration
}

// Result is the milter's answer to one message.
type Result struct {
	// Action is the final action: the reply at end of message, or the one
	// that ended the session early.
	Action *gomilter.Action
	// Early names the step that got a reply other than continue ("rcpt
	// bob@x", "header Subject", ...); "" when the body was reached.
	Early string
	// Mods are the modifications asked for at end of message.
	Mods []gomilter.ModifyAction
}

// Send runs msg through the milter at addr.
func (m MTA) Send(addr string, msg Message) (Result, error) {
	network, actions, macros, timeout := m.Network, m.Actions, m.Macros, m.Timeout
	if network == "" {
		network = "tcp"
	}
	if actions == 0 {
		actions = AllActions
	}
	if macros == nil {
		macros = gomilter.NewMacroBag()
		macros.Set(gomilter.MacroClientAddr, "192.0.2.1")
	}
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	c := gomilter.NewClient(network, addr, gomilter.WithActions(actions),
		gomilter.WithDialer(&net.Dialer{Timeout: timeout}), gomilter.WithReadTimeout(timeout), gomilter.WithWriteTimeout(timeout))
	s, err := c.Session(macros)
	if err != nil {
		return Result{}, fmt.Errorf("milter session: %w", err)
	}
	defer s.Close()
	type step struct {
		name string
		do   func() (*gomilter.Action, error)
	}
	steps := []step{
		{"connect", func() (*gomilter.Action, error) { return s.Conn("mx.example", gomilter.FamilyInet, 25, "192.0.2.1") }},
		{"helo", func() (*gomilter.Action, error) { return s.Helo("mx.example") }},
		{"mail", func() (*gomilter.Action, error) { return s.Mail(msg.From, "") }},
	}
	for _, r := range msg.Rcpts {
		steps = append(steps, step{"rcpt " + r, func() (*gomilter.Action, error) { return s.Rcpt(r, "") }})
	}
	steps = append(steps, step{"data", s.DataStart})
	for _, h := range msg.Headers {
		steps = append(steps, step{"header " + h[0], func() (*gomilter.Action, error) { return s.HeaderField(h[0], h[1], nil) }})
	}
	steps = append(steps, step{"end of header", s.HeaderEnd})
	for _, st := range steps {
		a, err := st.do()
		if err != nil {
			return Result{}, fmt.Errorf("%s: %w", st.name, err)
		}
		if a == nil { // a header the milter asked not to be answered
			continue
		}
		if a.Type != gomilter.ActionContinue {
			return Result{Action: a, Early: st.name}, nil
		}
	}
	mods, act, err := s.BodyReadFrom(strings.NewReader(msg.Body))
	if err != nil {
		return Result{}, fmt.Errorf("body: %w", err)
	}
	return Result{Action: act, Mods: mods}, nil
}

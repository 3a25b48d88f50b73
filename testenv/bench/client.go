package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// Outcome is what the milter did with one message.
type Outcome int

// Outcomes, as the MTA sees them.
const (
	Passed      Outcome = iota // accepted untouched (or continue to the end)
	Redirected                 // accepted with the recipients replaced
	Quarantined                // accepted into the hold queue
	Tagged                     // accepted with a header added
	Refused                    // rejected, tempfailed or discarded
	numOutcomes
)

func (o Outcome) String() string {
	return [...]string{"passed", "redirected", "quarantined", "tagged", "refused"}[o]
}

// postfixActions is what Postfix 3.x offers a milter (milter_protocol 6).
const postfixActions = gomilter.OptAddHeader | gomilter.OptChangeBody | gomilter.OptAddRcpt | gomilter.OptRemoveRcpt |
	gomilter.OptChangeHeader | gomilter.OptQuarantine | gomilter.OptChangeFrom | gomilter.OptAddRcptWithArgs | gomilter.OptSetMacros

// NewPostfixLikeClient returns a go-milter client that offers what Postfix
// 3.x offers (protocol 6, all actions and protocol steps) and sends
// Postfix's default milter_*_macros unless the milter asks for others;
// opts come after these.
func NewPostfixLikeClient(addr string, opts ...gomilter.Option) *gomilter.Client {
	return gomilter.NewClient(testproc.Network(addr), addr, append([]gomilter.Option{
		gomilter.WithActions(postfixActions),
		gomilter.WithReadTimeout(60 * time.Second),
		gomilter.WithWriteTimeout(60 * time.Second),
		gomilter.WithMacroRequest(gomilter.StageConnect, []gomilter.MacroName{"j", "{daemon_name}", "{daemon_addr}", "v", "_"}),
		gomilter.WithMacroRequest(gomilter.StageHelo, []gomilter.MacroName{"{tls_version}", "{cipher}", "{cipher_bits}", "{cert_subject}", "{cert_issuer}"}),
		gomilter.WithMacroRequest(gomilter.StageMail, []gomilter.MacroName{"i", "{auth_type}", "{auth_authen}", "{auth_author}", "{mail_addr}", "{mail_host}", "{mail_mailer}"}),
		gomilter.WithMacroRequest(gomilter.StageRcpt, []gomilter.MacroName{"{rcpt_addr}", "{rcpt_host}", "{rcpt_mailer}"}),
		gomilter.WithMacroRequest(gomilter.StageData, []gomilter.MacroName{"i"}),
		gomilter.WithMacroRequest(gomilter.StageEOM, []gomilter.MacroName{"i"}),
	}, opts...)...)
}

// Timing is one message's path through the milter, seen from the MTA.
type Timing struct {
	Start   time.Time     // before the connection was opened
	EOMSent time.Time     // just before end of message was sent
	Done    time.Time     // when the final reply arrived
	Outcome Outcome       //
	Worker  int           // the session (goroutine) that sent it
	Seq     int           // its index in the run
	Info    string        // the X-Loopbreaker header, if any
	Latency time.Duration // Done - Start
}

// RunResult is one run of Drive.
type RunResult struct {
	N        int
	Wall     time.Duration
	Outcomes [numOutcomes]int
	Timings  []Timing // by Seq
}

// PerSecond is the run's throughput.
func (r *RunResult) PerSecond() float64 { return float64(r.N) / r.Wall.Seconds() }

// Latencies returns the per-message latencies.
func (r *RunResult) Latencies() []time.Duration {
	out := make([]time.Duration, len(r.Timings))
	for i, t := range r.Timings {
		out[i] = t.Latency
	}
	return out
}

// Drive sends n messages, gen(0) … gen(n-1), to the milter at addr from
// conc sessions at once, one milter connection per message as Postfix opens
// one per SMTP session: connect, negotiate, CONNECT, HELO, MAIL, RCPT,
// DATA, the header fields, end of header, the body, end of message, QUIT.
// The client sends every event; the milter's negotiation decides which
// ones travel. Any protocol error ends the run.
func Drive(ctx context.Context, addr string, conc, n int, gen func(i int) *Mail) (*RunResult, error) {
	if conc < 1 {
		conc = 1
	}
	client := NewPostfixLikeClient(addr)
	res := &RunResult{N: n, Timings: make([]Timing, n)}
	var next atomic.Int64
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var firstErr error
	start := time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			macros := postfixMacros()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				t, err := sendOne(client, macros, gen(i), i)
				if err != nil {
					errMu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("message %d: %w", i, err)
					}
					errMu.Unlock()
					next.Store(int64(n)) // stop the others
					return
				}
				t.Worker, t.Seq = w, i
				res.Timings[i] = t
			}
		}()
	}
	wg.Wait()
	res.Wall = time.Since(start)
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, t := range res.Timings {
		res.Outcomes[t.Outcome]++
	}
	return res, nil
}

// postfixMacros holds the values Postfix would have for a plain SMTP
// session from a client on the loopback network.
func postfixMacros() *gomilter.MacroBag {
	m := gomilter.NewMacroBag()
	m.Set("j", "mx.corp.example")
	m.Set("{daemon_name}", "smtpd")
	m.Set("{daemon_addr}", "127.0.0.1")
	m.Set("v", "Postfix 3.7.11")
	m.Set("_", "client.example [192.0.2.10]")
	m.Set(gomilter.MacroClientAddr, "192.0.2.10")
	m.Set("{mail_mailer}", "smtp")
	m.Set("{rcpt_mailer}", "smtp")
	return m
}

var queueSeq atomic.Uint64

func sendOne(c *gomilter.Client, macros *gomilter.MacroBag, m *Mail, i int) (t Timing, err error) {
	t.Start = time.Now()
	macros.Set("i", "4B"+strconv.FormatUint(queueSeq.Add(1), 16))
	macros.Set("{mail_addr}", m.Sender)
	s, err := c.Session(macros)
	if err != nil {
		return t, err
	}
	defer s.Close()
	steps := []func() (*gomilter.Action, error){
		func() (*gomilter.Action, error) {
			return s.Conn("client.example", gomilter.FamilyInet, 25000, "192.0.2.10")
		},
		func() (*gomilter.Action, error) { return s.Helo("client.example") },
		func() (*gomilter.Action, error) { return s.Mail(m.Sender, "") },
	}
	for _, r := range m.Recipients {
		steps = append(steps, func() (*gomilter.Action, error) {
			macros.Set("{rcpt_addr}", r)
			return s.Rcpt(r, "")
		})
	}
	steps = append(steps, s.DataStart)
	for _, h := range m.Header {
		steps = append(steps, func() (*gomilter.Action, error) { return s.HeaderField(h[0], h[1], nil) })
	}
	steps = append(steps, s.HeaderEnd)
	for _, step := range steps {
		act, err := step()
		if err != nil {
			return t, err
		}
		if act.Type != gomilter.ActionContinue {
			// A refusal before the end (a blocked recipient at RCPT).
			t.Done = time.Now()
			t.EOMSent = t.Done
			t.Latency = t.Done.Sub(t.Start)
			t.Outcome = Refused
			return t, s.Abort(nil)
		}
	}
	// The body goes in MTA-sized chunks; a Skip reply ends it early.
	body := m.Body
	for len(body) > 0 && !s.Skip() {
		chunk := body[:min(len(body), int(gomilter.DataSize64K))]
		body = body[len(chunk):]
		act, err := s.BodyChunk(chunk)
		if err != nil {
			return t, err
		}
		if act.Type != gomilter.ActionContinue {
			return t, fmt.Errorf("unexpected %v to a body chunk", act.Type)
		}
	}
	t.EOMSent = time.Now()
	mods, act, err := s.End()
	t.Done = time.Now()
	t.Latency = t.Done.Sub(t.Start)
	if err != nil {
		return t, err
	}
	t.Outcome, t.Info = classifyOutcome(mods, act)
	return t, nil
}

func classifyOutcome(mods []gomilter.ModifyAction, act *gomilter.Action) (Outcome, string) {
	var info string
	var addRcpt, quarantine, addHeader bool
	for _, m := range mods {
		switch m.Type {
		case gomilter.ActionAddRcpt:
			addRcpt = true
		case gomilter.ActionQuarantine:
			quarantine = true
		case gomilter.ActionAddHeader, gomilter.ActionInsertHeader:
			addHeader = true
			if m.HeaderName == "X-Loopbreaker" {
				info = m.HeaderValue
			}
		}
	}
	switch act.Type {
	case gomilter.ActionAccept, gomilter.ActionContinue:
	default:
		return Refused, info
	}
	switch {
	case addRcpt:
		return Redirected, info
	case quarantine:
		return Quarantined, info
	case addHeader:
		return Tagged, info
	}
	return Passed, info
}

// ErrNotAStorm says the storm was not acted on: the benchmark would not
// measure what it claims.
var ErrNotAStorm = errors.New("the storm was not acted on by loopbreaker")

// infoCount reads count=N from an X-Loopbreaker header.
func infoCount(info string) int {
	i := bytes.Index([]byte(info), []byte("count="))
	if i < 0 {
		return 0
	}
	n := 0
	for _, c := range []byte(info[i+6:]) {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}

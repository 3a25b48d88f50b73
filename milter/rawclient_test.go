package milter

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"

	gomilter "github.com/d--j/go-milter"

	"github.com/loopbreaker/loopbreaker/loopdetect/engine"
	"github.com/loopbreaker/loopbreaker/loopdetect/policy"
	"github.com/loopbreaker/loopbreaker/state"
	"github.com/loopbreaker/loopbreaker/testenv/miltertest"
	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// This file is a milter client that writes raw bytes: the hostile-input
// tests send what no well-behaved library would (bad frames, commands out
// of order), and the memory test sends pre-built byte streams so that the
// client itself allocates nothing while the server's heap is measured.

// pkt frames one milter packet: 4-byte length, command byte, data.
func pkt(code byte, data ...[]byte) []byte {
	n := 1
	for _, d := range data {
		n += len(d)
	}
	out := make([]byte, 4, 4+n)
	binary.BigEndian.PutUint32(out, uint32(n))
	out = append(out, code)
	for _, d := range data {
		out = append(out, d...)
	}
	return out
}

func cstr(s string) []byte { return append([]byte(s), 0) }

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// optNeg is what Postfix 3.7 offers: protocol 6, every action, every
// protocol step.
func optNeg() []byte {
	return pkt('O', u32(6), u32(0x1ff), u32(0x1fffff))
}

// headerPkt is one header field ('L': name NUL value NUL).
func headerPkt(name, value string) []byte { return pkt('L', cstr(name), cstr(value)) }

// envelope is a session's start as Postfix sends it: negotiation, the MAIL
// macros ({client_addr}), MAIL, RCPT.
func envelope(from, rcpt string) []byte {
	var b []byte
	b = append(b, optNeg()...)
	b = append(b, pkt('D', []byte{'M'}, cstr("{client_addr}"), cstr("192.0.2.1"))...)
	b = append(b, pkt('M', cstr("<"+from+">"))...)
	b = append(b, pkt('R', cstr("<"+rcpt+">"))...)
	return b
}

// bodyPkts splits body into 64 KiB chunks ('B') and ends the message ('E').
func bodyPkts(body []byte) []byte {
	var b []byte
	b = append(b, pkt('N')...)
	for len(body) > 0 {
		n := min(len(body), 65535)
		b = append(b, pkt('B', body[:n])...)
		body = body[n:]
	}
	return append(b, pkt('E')...)
}

// reply is one packet from the milter.
type reply struct {
	code byte
	data []byte
}

// terminal reports whether the reply ends the message (SMFIR_ACCEPT,
// REJECT, TEMPFAIL, DISCARD, REPLYCODE).
func (r reply) terminal() bool {
	switch r.code {
	case 'a', 'r', 't', 'd', 'y':
		return true
	}
	return false
}

// readReplies reads the milter's packets until EOF or an error.
func readReplies(c net.Conn, out chan<- reply) error {
	defer close(out)
	br := bufio.NewReader(c)
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return err
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n == 0 || n > 1<<20 {
			return fmt.Errorf("milter sent a packet of %d bytes", n)
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(br, data); err != nil {
			return err
		}
		out <- reply{code: data[0], data: data[1:]}
	}
}

// rawMessage sends stream on a new connection and returns the replies up
// to the first terminal one (the message's fate), or an error.
func rawMessage(ctx context.Context, addr string, stream []byte) ([]reply, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	replies := make(chan reply, 64)
	readErr := make(chan error, 1)
	go func() { readErr <- readReplies(c, replies) }()
	writeErr := make(chan error, 1)
	go func() { _, err := c.Write(stream); writeErr <- err }()
	var got []reply
	for r := range replies {
		got = append(got, r)
		if r.terminal() {
			c.Close()
			<-writeErr
			return got, nil
		}
	}
	werr := <-writeErr
	return got, fmt.Errorf("no final reply (write: %v, read: %v)", werr, <-readErr)
}

// startTB starts a Server like the daemon's (default policy, corp.example
// local) with opts, for tests, fuzz targets and benchmarks.
func startTB(tb testing.TB, opts Options) (string, *Server) {
	tb.Helper()
	p := policy.Default()
	p.Apply(policy.Overrides{LocalDomains: []string{"corp.example"}, QuarantineMailbox: "quarantine@corp.example"})
	return serveTB(tb, p, io.Discard, opts, nil)
}

// parsePolicy parses src as a policy file.
func parsePolicy(tb testing.TB, src string) *policy.Policy {
	tb.Helper()
	p, err := policy.Parse("test.toml", []byte(src))
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// serveTB starts a Server with opts on an engine of p and a fresh state
// store, logging to logw; configure (if not nil) sees the engine before the
// server does. The server is shut down, and Serve's error checked, when tb
// ends.
func serveTB(tb testing.TB, p *policy.Policy, logw io.Writer, opts Options, configure func(*engine.Engine)) (string, *Server) {
	tb.Helper()
	st, err := state.Open(filepath.Join(tb.TempDir(), "state.db"), state.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(logw, nil))
	eng := engine.New(p, st, log)
	if configure != nil {
		configure(eng)
	}
	tb.Cleanup(func() { st.Close() }) // after the server's shutdown
	srv := NewServer(eng, log, opts)
	return testproc.ServeLoopback(tb, srv), srv
}

// normalSession runs one ordinary message through the go-milter client, as
// Postfix would, and reports an error unless it is accepted untouched.
func normalSession(addr string) error {
	r, err := miltertest.MTA{}.Send(addr, miltertest.Message{
		From: "alice@corp.example", Rcpts: []string{"bob@outside.example"},
		Headers: [][2]string{{"Subject", "lunch"}}, Body: "see you at noon\r\n",
	})
	switch {
	case err != nil:
		return err
	case r.Early != "":
		return fmt.Errorf("%s: early %v", r.Early, r.Action.Type)
	case r.Action.Type != gomilter.ActionAccept || len(r.Mods) != 0:
		return fmt.Errorf("ordinary message: %v with %d modifications", r.Action.Type, len(r.Mods))
	}
	return nil
}

var errNotClosed = errors.New("the milter neither answered nor closed the connection")

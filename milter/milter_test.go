package milter

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/loopbreaker/loopbreaker/loopdetect/policy"
	"github.com/loopbreaker/loopbreaker/testenv/miltertest"
)

func startServer(t *testing.T) string {
	t.Helper()
	addr, _ := startTB(t, Options{})
	return addr
}

type result struct {
	act  *gomilter.Action
	mods []gomilter.ModifyAction
}

// send runs one message through a milter session the way Postfix's smtpd
// does: {client_addr} is defined.
func send(t *testing.T, addr, from string, rcpts []string, headers [][2]string, body string) result {
	t.Helper()
	macros := gomilter.NewMacroBag()
	macros.Set(gomilter.MacroClientAddr, "192.0.2.1")
	return sendMacros(t, addr, macros, from, rcpts, headers, body)
}

// sendMacros runs one message with the given macros; with {client_port}
// "0" it looks like Postfix's non-SMTP mail (its own bounces).
func sendMacros(t *testing.T, addr string, macros *gomilter.MacroBag, from string, rcpts []string, headers [][2]string, body string) result {
	t.Helper()
	return sendActions(t, addr, miltertest.AllActions, macros, from, rcpts, headers, body)
}

// sendActions runs one message with an MTA that offers only actions.
func sendActions(t *testing.T, addr string, actions gomilter.OptAction, macros *gomilter.MacroBag, from string, rcpts []string, headers [][2]string, body string) result {
	t.Helper()
	r, err := miltertest.MTA{Actions: actions, Macros: macros}.Send(addr, miltertest.Message{From: from, Rcpts: rcpts, Headers: headers, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	if r.Early != "" {
		t.Fatalf("early action at %s: %v", r.Early, r.Action)
	}
	return result{act: r.Action, mods: r.Mods}
}

func TestZeroLengthPacketDoesNotKillTheServer(t *testing.T) {
	addr := startServer(t)
	for _, frame := range [][]byte{{0, 0, 0, 0}, {0xff, 0xff, 0xff, 0xff}} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(frame); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatalf("connection with invalid frame %x still open (read %d bytes)", frame, n)
		}
		c.Close()
	}
	// The daemon is alive and serves the next session normally.
	r := send(t, addr, "alice@corp.example", []string{"bob@outside.example"}, [][2]string{{"Subject", "hello"}}, "hi\r\n")
	if r.act.Type != gomilter.ActionAccept || len(r.mods) != 0 {
		t.Fatalf("after bad frames: %v %v", r.act, r.mods)
	}
}

func TestStormIsRedirectedAfterLimitOverTheProtocol(t *testing.T) {
	addr := startServer(t)
	fwd := [][2]string{{"From", "Alice <alice@corp.example>"}, {"Subject", "FW: Mail delivery failed: returning message to sender"}}
	var passed, redirected int
	for i := 0; i < 40; i++ {
		r := send(t, addr, "alice@corp.example", []string{"typo@outside.example"}, fwd, "forwarded\r\n")
		if r.act.Type != gomilter.ActionAccept {
			t.Fatalf("message %d: action %v", i, r.act)
		}
		if len(r.mods) == 0 {
			passed++
			continue
		}
		var added, deleted string
		var origHeader bool
		for _, m := range r.mods {
			switch m.Type {
			case gomilter.ActionAddRcpt:
				added = m.Rcpt
			case gomilter.ActionDelRcpt:
				deleted = m.Rcpt
			case gomilter.ActionAddHeader:
				if m.HeaderName == HeaderOriginalRecipients && strings.Contains(m.HeaderValue, "typo@outside.example") {
					origHeader = true
				}
			}
		}
		if added != "<quarantine@corp.example>" || deleted != "<typo@outside.example>" || !origHeader {
			t.Fatalf("message %d: modifications %+v", i, r.mods)
		}
		redirected++
	}
	if passed != 25 || redirected != 15 {
		t.Fatalf("passed %d, redirected %d; want 25 and 15", passed, redirected)
	}
	// Ordinary mail of the same sender is untouched during the block.
	r := send(t, addr, "alice@corp.example", []string{"typo@outside.example"}, [][2]string{{"Subject", "lunch"}}, "hi\r\n")
	if r.act.Type != gomilter.ActionAccept || len(r.mods) != 0 {
		t.Fatalf("ordinary mail: %v %+v", r.act, r.mods)
	}
}

func TestMalformedMailIsAccepted(t *testing.T) {
	addr := startServer(t)
	headers := [][2]string{
		{"Subject", "=?bogus-charset?Q?=ZZ=?= \xff\xfe"},
		{"Content-Type", "multipart/report; boundary="},
		{"Received", strings.Repeat("x", 100000)},
	}
	r := send(t, addr, "", []string{"bob@corp.example"}, headers, "--\r\n\x00\xff garbage\r\n")
	if r.act.Type != gomilter.ActionAccept {
		t.Fatalf("malformed mail: %v", r.act)
	}
}

func TestConcurrentSessionsPassExactlyLimit(t *testing.T) {
	addr := startServer(t)
	fwd := [][2]string{{"Subject", "FW: failure notice"}}
	const sessions, each = 16, 6
	results := make(chan result, sessions*each)
	var wg sync.WaitGroup
	for s := 0; s < sessions; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				results <- send(t, addr, "alice@corp.example", []string{"typo@outside.example"}, fwd, "b\r\n")
			}
		}()
	}
	wg.Wait()
	close(results)
	passed := 0
	for r := range results {
		if len(r.mods) == 0 {
			passed++
		}
	}
	if passed != 25 {
		t.Fatalf("%d passed, want exactly 25 of %d", passed, sessions*each)
	}
}

func TestFoldedSubjectIsUnfolded(t *testing.T) {
	addr := startServer(t)
	hdr := [][2]string{{"Subject", "FW: Mail delivery\r\n failed: returning message to sender"}}
	var last result
	for i := 0; i < 26; i++ {
		last = send(t, addr, "alice@corp.example", []string{"typo@outside.example"}, hdr, "b\r\n")
	}
	if !hasMod(last.mods, gomilter.ActionAddRcpt) {
		t.Fatalf("a folded NDR subject was not recognized: %+v", last.mods)
	}
}

func TestSessionCapAndIdleTimeout(t *testing.T) {
	addr, srv := serveTB(t, policy.Default(), io.Discard, Options{MaxSessions: 2, IdleTimeout: 300 * time.Millisecond}, nil)
	// Two idle connections take both slots...
	var idle []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	// ...and are closed by the idle timeout, which frees the slots for a
	// real session.
	for _, c := range idle {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("idle connection got data")
		}
		c.Close()
	}
	r := send(t, addr, "alice@corp.example", []string{"bob@outside.example"}, [][2]string{{"Subject", "hi"}}, "b\r\n")
	if r.act.Type != gomilter.ActionAccept {
		t.Fatalf("%+v", r.act)
	}
	// Shutdown is not stuck behind a full cap.
	block := []net.Conn{}
	for i := 0; i < 2; i++ {
		c, _ := net.Dial("tcp", addr)
		block = append(block, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	for _, c := range block {
		c.Close()
	}
}

package milter

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"
)

// hostileSeeds are raw byte streams an MTA never sends: bad frames,
// unknown commands, commands out of order, truncated frames, macros with
// odd bytes. FuzzMilterWire starts from them.
func hostileSeeds() map[string][]byte {
	neg := optNeg()
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	full := cat(envelope("alice@corp.example", "bob@outside.example"), headerPkt("Subject", "hi"), bodyPkts([]byte("hello\r\n")))
	oversize := make([]byte, 4)
	binary.BigEndian.PutUint32(oversize, MaxFrame+1)
	return map[string][]byte{
		"zero-length":             {0, 0, 0, 0},
		"max-length":              {0xff, 0xff, 0xff, 0xff},
		"over-max-frame":          oversize,
		"zero-length-after-neg":   cat(neg, []byte{0, 0, 0, 0}),
		"truncated-length":        {0, 0},
		"truncated-frame":         cat(neg, []byte{0, 0, 0, 100, 'L'}, []byte("Subject\x00hi")),
		"truncated-negotiation":   pkt('O', []byte{0, 0}),
		"negotiation-version-0":   pkt('O', u32(0), u32(0x1ff), u32(0x1fffff)),
		"negotiation-version-max": pkt('O', u32(0xffffffff), u32(0xffffffff), u32(0xffffffff)),
		"double-negotiation":      cat(neg, neg, neg),
		"unknown-command":         cat(neg, pkt('Z', []byte("???")), pkt('\x00'), pkt('\xff', []byte{0xff})),
		"body-before-mail":        cat(neg, pkt('B', []byte("body")), pkt('E')),
		"eom-before-anything":     cat(neg, pkt('E'), pkt('E')),
		"header-before-mail":      cat(neg, headerPkt("Subject", "x"), pkt('N'), pkt('E')),
		"rcpt-before-mail":        cat(neg, pkt('R', cstr("<bob@corp.example>")), pkt('E')),
		"commands-without-neg":    cat(pkt('M', cstr("<a@b>")), pkt('R', cstr("<c@d>")), pkt('E')),
		"mail-without-nul":        cat(neg, pkt('M', []byte("<alice@corp.example>")), pkt('E')),
		"empty-mail":              cat(neg, pkt('M'), pkt('R'), pkt('L'), pkt('E')),
		"header-no-value":         cat(neg, pkt('M', cstr("<>")), pkt('L', []byte("Subject")), pkt('E')),
		"macro-odd-bytes":         cat(neg, pkt('D', []byte{'M'}, []byte("{auth_authen}\x00\xff\xfe\x00{client_addr}\x00[\x00\x01]\x00")), pkt('M', cstr("<>")), pkt('E')),
		"macro-unterminated":      cat(neg, pkt('D', []byte{'M'}, []byte("{i}\x00value-without-nul")), pkt('M', cstr("<x@y>")), pkt('E')),
		"macro-unknown-stage":     cat(neg, pkt('D', []byte{'\xff'}, cstr("{x}"), cstr("y")), pkt('D'), pkt('E')),
		"macro-odd-count":         cat(neg, pkt('D', []byte{'E'}, cstr("{i}")), pkt('E')),
		"connect-garbage-family":  cat(neg, pkt('C', cstr("host"), []byte{'Z', 0xff}), pkt('H'), pkt('E')),
		"connect-short":           cat(neg, pkt('C')),
		"abort-quit-sequences":    cat(neg, pkt('A'), pkt('A'), pkt('K'), neg, pkt('M', cstr("<>")), pkt('Q')),
		"quit-new-conn-midmsg":    cat(envelope("a@corp.example", "b@outside.example"), pkt('K'), full[len(neg):]),
		"nul-header":              cat(neg, pkt('M', cstr("<>")), headerPkt("\x00\x00", "\x00\xff\x00"), pkt('E')),
		"eight-bit-envelope":      cat(neg, pkt('M', cstr("<\xff\xfe@\x80.example>"), cstr("SIZE=\xff")), pkt('R', cstr("<\xc3\x28@corp.example>")), pkt('E')),
		"full-session":            full,
		"full-session-twice":      cat(full, full[len(neg):]),
		"unknown-smtp-command":    cat(neg, pkt('U', cstr("XYZZY \xff")), pkt('T'), pkt('E')),
	}
}

// checkStillServes sends stream on a connection of its own, half-closes
// it, and requires the milter to finish with it (answer or close) within
// a bound; then an ordinary session must be served normally.
func checkStillServes(t *testing.T, addr string, stream []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial after hostile input: %v", err)
	}
	c.SetDeadline(time.Now().Add(15 * time.Second))
	go func() {
		c.Write(stream)
		c.(*net.TCPConn).CloseWrite()
	}()
	_, err = io.Copy(io.Discard, c)
	c.Close()
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("%v: input %q", errNotClosed, stream)
		}
		// A reset is fine: the server closed on us.
	}
	if err := normalSession(addr); err != nil {
		t.Fatalf("after input %q the milter does not serve an ordinary session: %v", stream, err)
	}
}

// FuzzMilterWire writes raw bytes to a running milter.Server (the one the
// daemon runs, with its framing guard) and then requires a normal session
// to be served. A panic anywhere in the session code, ours or the
// library's, fails it (the fuzz process dies), as does a connection the
// server keeps after the peer's EOF, or a server that no longer answers.
//
//	go test -run XXX -fuzz FuzzMilterWire -fuzztime 60s ./milter
func FuzzMilterWire(f *testing.F) {
	for _, s := range hostileSeeds() {
		f.Add(s)
	}
	addr, _ := startTB(f, Options{IdleTimeout: 5 * time.Second})
	f.Fuzz(func(t *testing.T, stream []byte) {
		checkStillServes(t, addr, stream)
	})
}

// TestSessionCapHolds: with -max-sessions 2, a third MTA connection is
// not served while two sessions are open (it waits, unanswered), and is
// served as soon as one of them ends.
func TestSessionCapHolds(t *testing.T) {
	addr, _ := startTB(t, Options{MaxSessions: 2, IdleTimeout: time.Minute})
	negotiate := func() (net.Conn, chan reply) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		rs := make(chan reply, 8)
		go readReplies(c, rs)
		if _, err := c.Write(optNeg()); err != nil {
			t.Fatal(err)
		}
		return c, rs
	}
	a, ra := negotiate()
	_, rb := negotiate()
	for _, rs := range []chan reply{ra, rb} {
		select {
		case r := <-rs:
			if r.code != 'O' {
				t.Fatalf("negotiation reply %q", r.code)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a session within the cap was not answered")
		}
	}
	_, rc := negotiate()
	select {
	case r := <-rc:
		t.Fatalf("third connection answered (%q) while two sessions hold the cap of 2", r.code)
	case <-time.After(500 * time.Millisecond):
	}
	a.Close()
	select {
	case r := <-rc:
		if r.code != 'O' {
			t.Fatalf("negotiation reply %q", r.code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting connection was not served after a slot freed")
	}
}

// TestSlowSessionTimesOut: an MTA (or anything else) that trickles a
// packet a byte at a time cannot hold a session for longer than the idle
// timeout per packet: the deadline covers the whole packet, not each byte.
func TestSlowSessionTimesOut(t *testing.T) {
	addr, _ := startTB(t, Options{IdleTimeout: 300 * time.Millisecond})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rs := make(chan reply, 8)
	go readReplies(c, rs)
	c.Write(optNeg())
	if r := <-rs; r.code != 'O' {
		t.Fatalf("negotiation reply %q", r.code)
	}
	slow := headerPkt("Subject", string(bytes.Repeat([]byte("x"), 200)))
	start := time.Now()
	closed := false
	for _, b := range slow {
		if _, err := c.Write([]byte{b}); err != nil {
			closed = true
			break
		}
		select {
		case _, ok := <-rs:
			if !ok {
				closed = true
			}
		case <-time.After(100 * time.Millisecond):
		}
		if closed || time.Since(start) > 10*time.Second {
			break
		}
	}
	took := time.Since(start)
	if !closed {
		t.Fatalf("a packet trickled over %s kept the session open (idle timeout 300ms)", took.Round(time.Millisecond))
	}
	if took > 3*time.Second {
		t.Fatalf("the trickling session was closed only after %s", took.Round(time.Millisecond))
	}
	if err := normalSession(addr); err != nil {
		t.Fatal(err)
	}
}

// TestHostileSeedsOneServer runs every seed against one server in a row
// (FuzzMilterWire runs each on its own in -fuzz mode): the state one bad
// session leaves must not hurt the next.
func TestHostileSeedsOneServer(t *testing.T) {
	addr, _ := startTB(t, Options{IdleTimeout: 5 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for name, s := range hostileSeeds() {
		if ctx.Err() != nil {
			t.Fatal(ctx.Err())
		}
		t.Run(name, func(t *testing.T) { checkStillServes(t, addr, s) })
	}
}

// TestIDNSpellingsAreOneKey: the envelope sender of a forwarding storm in
// UTF-8 and punycode, upper and lower case, with and without subaddress,
// is one key (the 26th forward is redirected, the default limit being 25);
// a sender whose domain only lacks the umlaut is another key.
func TestIDNSpellingsAreOneKey(t *testing.T) {
	addr := startServer(t)
	spellings := []string{"alice@bücher.example", "ALICE@BÜCHER.EXAMPLE", "alice@xn--bcher-kva.example",
		"Alice+fw@Bücher.Example", "alice+x@XN--BCHER-KVA.EXAMPLE", "<alice@bücher.example.>"}
	fwd := [][2]string{{"Subject", "FW: Mail delivery failed: returning message to sender"}}
	var last result
	for i := 0; i < 26; i++ {
		last = send(t, addr, spellings[i%len(spellings)], []string{"typo@outside.example"}, fwd, "b\r\n")
		if i < 25 && len(last.mods) != 0 {
			t.Fatalf("forward %d (%s) acted on before the limit: %+v", i+1, spellings[i%len(spellings)], last.mods)
		}
	}
	if !hasMod(last.mods, gomilter.ActionAddRcpt) {
		t.Fatalf("the 26th forward under a varied spelling was not redirected: %+v", last.mods)
	}
	for _, other := range []string{"alice@bucher.example", "alice.b@bücher.example", "fw@bücher.example"} {
		if r := send(t, addr, other, []string{"typo@outside.example"}, fwd, "b\r\n"); len(r.mods) != 0 {
			t.Errorf("%s was merged with alice@bücher.example's key: %+v", other, r.mods)
		}
	}
}

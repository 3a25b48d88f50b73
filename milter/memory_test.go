package milter

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/loopdetect/policy"
)

// heapSampler records the peak of the Go heap's object bytes (live and
// not yet swept) while it runs, sampling every 200 µs.
type heapSampler struct {
	peak atomic.Uint64
	stop chan struct{}
	done sync.WaitGroup
}

func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func startHeapSampler() *heapSampler {
	h := &heapSampler{stop: make(chan struct{})}
	h.peak.Store(heapObjects())
	h.done.Add(1)
	go func() {
		defer h.done.Done()
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		t := time.NewTicker(200 * time.Microsecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > h.peak.Load() {
				h.peak.Store(v)
			}
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
		}
	}()
	return h
}

func (h *heapSampler) Stop() uint64 {
	close(h.stop)
	h.done.Wait()
	if v := heapObjects(); v > h.peak.Load() {
		h.peak.Store(v)
	}
	return h.peak.Load()
}

// hostileMessage is one message of the content test, as the raw byte
// stream an MTA would send (built before the measurement, so the client
// allocates nothing while the server's heap is sampled).
type hostileMessage struct {
	name     string
	stream   []byte
	maxFrame int // the largest packet in the stream
}

func buildHostile(name string, headers [][2]string, body []byte) hostileMessage {
	var b bytes.Buffer
	b.Write(envelope("outsider@partner.example", "bob@corp.example"))
	maxFrame := 0
	for _, h := range headers {
		p := headerPkt(h[0], h[1])
		maxFrame = max(maxFrame, len(p))
		b.Write(p)
	}
	b.Write(bodyPkts(body))
	return hostileMessage{name: name, stream: b.Bytes(), maxFrame: max(maxFrame, 65536)}
}

// hostileMessages returns builders, so that only the message being sent
// is in memory during its measurement.
func hostileMessages() []func() hostileMessage {
	rng := rand.New(rand.NewPCG(9, 9))
	garbage := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.IntN(256))
			if b[i] == 0 {
				b[i] = 0xff // NUL ends a C string in the milter protocol
			}
		}
		return string(b)
	}
	base := [][2]string{
		{"From", "Outsider <outsider@partner.example>"},
		{"To", "bob@corp.example"},
		{"Subject", "quarterly figures"},
		{"Message-ID", "<hostile@partner.example>"},
	}
	with := func(extra ...[2]string) [][2]string { return append(append([][2]string{}, base...), extra...) }
	var msgs []func() hostileMessage
	add := func(f func() hostileMessage) { msgs = append(msgs, f) }

	// A 10 MB header block: 10,000 fields of 1 KB.
	add(func() hostileMessage {
		var block [][2]string
		for i := 0; i < 10000; i++ {
			block = append(block, [2]string{fmt.Sprintf("X-Block-%d", i), strings.Repeat("b", 1000)})
		}
		return buildHostile("10MB header block", with(block...), []byte("hello\r\n"))
	})

	// One 10 MB header field (under the 16 MiB frame limit).
	add(func() hostileMessage {
		return buildHostile("one 10MB header field", with([2]string{"X-Huge", strings.Repeat("h", 10<<20)}), []byte("hello\r\n"))
	})

	// 100,000 small header fields.
	add(func() hostileMessage {
		var many [][2]string
		for i := 0; i < 100000; i++ {
			many = append(many, [2]string{"X-Many", fmt.Sprintf("field %d of many", i)})
		}
		return buildHostile("100k header fields", with(many...), []byte("hello\r\n"))
	})

	// 1,000-deep MIME nesting.
	add(func() hostileMessage {
		var nest strings.Builder
		for i := 0; i < 1000; i++ {
			fmt.Fprintf(&nest, "--b%d\r\nContent-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n", i, i+1)
		}
		nest.WriteString("--b1000\r\nContent-Type: text/plain\r\n\r\ndeep\r\n")
		for i := 1000; i >= 0; i-- {
			fmt.Fprintf(&nest, "--b%d--\r\n", i)
		}
		return buildHostile("1000-deep MIME", with([2]string{"MIME-Version", "1.0"}, [2]string{"Content-Type", `multipart/mixed; boundary="b0"`}), []byte(nest.String()))
	})

	// 1,000-deep attached messages (message/rfc822 inside message/rfc822).
	add(func() hostileMessage {
		var rfc strings.Builder
		for i := 0; i < 1000; i++ {
			rfc.WriteString("Content-Type: message/rfc822\r\n\r\nSubject: FW: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n")
		}
		rfc.WriteString("\r\ninner\r\n")
		return buildHostile("1000-deep message/rfc822", with([2]string{"MIME-Version", "1.0"}, [2]string{"Content-Type", "message/rfc822"}), []byte(rfc.String()))
	})

	// 8-bit garbage in every header that matters.
	add(func() hostileMessage {
		return buildHostile("8-bit garbage headers", [][2]string{
			{"From", garbage(2000)}, {"To", garbage(2000)}, {"Subject", garbage(5000)},
			{"Content-Type", "multipart/report; boundary=" + garbage(300)}, {"Auto-Submitted", garbage(100)},
			{"Message-ID", garbage(500)}, {"In-Reply-To", garbage(500)}, {"References", garbage(50000)},
			{garbage(50), garbage(50)}, {"X-Loop", garbage(1000)},
		}, []byte(garbage(200000)))
	})

	// Broken encodings: encoded words with bogus charsets and escapes,
	// base64 and quoted-printable bodies that do not decode, a 20 MB body.
	add(func() hostileMessage {
		var enc strings.Builder
		for i := 0; i < 2000; i++ {
			enc.WriteString("=?x-unknown-" + fmt.Sprint(i) + "?Q?=ZZ=Q=?= =?utf-8?B?!!!notbase64?= ")
		}
		broken := "--x\r\nContent-Type: text/plain; charset=utf-7\r\nContent-Transfer-Encoding: base64\r\n\r\n" + strings.Repeat("!!!!====@@@@\r\n", 10000) +
			"--x\r\nContent-Type: message/delivery-status\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" + strings.Repeat("=ZZ=\r\n=", 10000) +
			"--x\r\nContent-Type: text/html; charset=bogus\r\n\r\n" + strings.Repeat("<div><p>", 50000)
		big := append([]byte(broken), bytes.Repeat([]byte("A"), 20<<20)...)
		return buildHostile("broken encodings, 20MB body", with(
			[2]string{"Subject", enc.String()},
			[2]string{"MIME-Version", "1.0"},
			[2]string{"Content-Type", `multipart/report; report-type=delivery-status; boundary="x"`},
			[2]string{"Content-Transfer-Encoding", "x-uuencode"},
		), big)
	})
	return msgs
}

// TestHostileContentMemoryIsBounded sends hostile messages through the
// milter protocol and measures the peak of the Go heap while the server
// handles each. The bound is derived from the caps: one packet (held by
// go-milter as bytes and as strings: 3 × the largest frame), the header
// cap (maxHeaderBytes, ×2 for the strings and the header map), the body
// cap (the policy's body_limit, ×4 for the body, its decoded parts and
// text), 2 MiB for the rest, and the garbage the collector lets build up
// (GOGC=10 during the test: 10 % of the heap, 4 MiB at least). A server
// that kept the whole 10 MB header block, the 100k fields or the 20 MB
// body would exceed it (checked by disabling the caps in milter.go: the
// header block +13.5 MB, the 100k fields +15.5 MB, the body +64.7 MB,
// against bounds of about 9 MB). Every message must be accepted (none of it is a storm), and ordinary
// mail after them too.
func TestHostileContentMemoryIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("builds about 60 MB of hostile messages")
	}
	addr, _ := startTB(t, Options{})
	bodyLimit := policy.Default().BodyLimit
	// A collector that runs when the heap grew by 10 % keeps the garbage
	// small, so the peak shows what the server holds.
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	for _, build := range hostileMessages() {
		m := build()
		runtime.GC()
		base := heapObjects()
		// What the caps let one message hold, plus the garbage the
		// collector lets accumulate (10 % of the heap, 4 MiB at least).
		bound := uint64(3*m.maxFrame+2*maxHeaderBytes+4*bodyLimit+2<<20) + max(base/10, 4<<20)
		h := startHeapSampler()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		start := time.Now()
		replies, err := rawMessage(ctx, addr, m.stream)
		took := time.Since(start)
		cancel()
		peak := h.Stop()
		if err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
		growth := peak - min(peak, base)
		t.Logf("%-28s %6.1f MB sent, peak heap +%5.1f MB (bound %5.1f MB), %s", m.name,
			float64(len(m.stream))/(1<<20), float64(growth)/(1<<20), float64(bound)/(1<<20), took.Round(time.Millisecond))
		if growth > bound {
			t.Errorf("%s: heap grew by %.1f MB, over the bound of %.1f MB derived from the caps", m.name, float64(growth)/(1<<20), float64(bound)/(1<<20))
		}
		final := replies[len(replies)-1]
		for _, r := range replies {
			if r.code == 'q' || r.code == '+' || r.code == '-' {
				t.Errorf("%s: modification %q (%q)", m.name, r.code, r.data)
			}
		}
		if final.code != 'a' {
			t.Errorf("%s: final reply %q (%q), want accept", m.name, final.code, final.data)
		}
	}
	if err := normalSession(addr); err != nil {
		t.Fatalf("ordinary mail after the hostile messages: %v", err)
	}
}

package replay

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestReplayProgress: a line every interval with the rate, and with a
// known total the share done and an ETA; a last line at the end; nothing
// for a phase shorter than the interval.
func TestReplayProgress(t *testing.T) {
	var out bytes.Buffer
	p := newProgress(&out)
	now := time.Date(2026, 3, 3, 9, 0, 0, 0, time.UTC)
	p.now = func() time.Time { return now }
	p.begin("replaying", 10000, false)
	for i := 0; i < 2560; i++ {
		if i%256 == 255 {
			now = now.Add(time.Second) // 256 messages a second
		}
		p.add(1, 0)
	}
	p.end()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) < 2 {
		t.Fatalf("progress:\n%s", out.String())
	}
	if !strings.Contains(lines[0], "replay: replaying: 512 messages (256/s), 5%, ETA 37s") {
		t.Errorf("first line %q", lines[0])
	}
	if last := lines[len(lines)-1]; !strings.Contains(last, "2560 messages") || !strings.Contains(last, " in 10s") {
		t.Errorf("last line %q", last)
	}

	out.Reset()
	p.begin("reading", 0, true)
	p.add(0, 100)
	p.end()
	if out.Len() != 0 {
		t.Errorf("a short phase printed %q", out.String())
	}
	var nilP *progress
	nilP.begin("x", 0, false)
	nilP.add(1, 1)
	nilP.end()
}

package replay

import (
	"fmt"
	"io"
	"time"
)

// progress prints, at most every interval, how far a phase got: messages,
// their rate, and with a known total an ETA. A nil *progress prints nothing.
type progress struct {
	w        io.Writer
	interval time.Duration
	phase    string
	start    time.Time
	last     time.Time
	msgs     int
	bytes    int64
	// total is what the phase goes up to (bytes while scanning, messages
	// while replaying); 0 when unknown.
	total   int64
	byBytes bool
	now     func() time.Time
	printed bool
	calls   int
}

func newProgress(w io.Writer) *progress {
	if w == nil {
		return nil
	}
	return &progress{w: w, interval: 2 * time.Second, now: time.Now}
}

// begin starts a phase.
func (p *progress) begin(phase string, total int64, byBytes bool) {
	if p == nil {
		return
	}
	p.phase, p.total, p.byBytes = phase, total, byBytes
	p.start = p.now()
	p.last, p.msgs, p.bytes, p.printed = p.start, 0, 0, false
}

// add counts messages and bytes done, printing when the interval is up.
// It reads the clock every 256 calls only.
func (p *progress) add(msgs int, bytes int64) {
	if p == nil {
		return
	}
	p.msgs += msgs
	p.bytes += bytes
	if p.calls++; p.calls&0xff != 0 {
		return
	}
	if now := p.now(); now.Sub(p.last) >= p.interval {
		p.last = now
		p.print(now, false)
	}
}

// end prints the phase's last line, if it printed any before.
func (p *progress) end() {
	if p == nil || !p.printed {
		return
	}
	p.print(p.now(), true)
}

func (p *progress) print(now time.Time, final bool) {
	p.printed = true
	el := now.Sub(p.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(p.msgs) / el
	}
	line := fmt.Sprintf("replay: %s: %d messages (%.0f/s)", p.phase, p.msgs, rate)
	done := int64(p.msgs)
	if p.byBytes {
		done = p.bytes
		line += fmt.Sprintf(", %.1f MB", float64(p.bytes)/1e6)
	}
	if p.total > 0 && !final && done > 0 && done < p.total {
		pct := float64(done) / float64(p.total)
		eta := time.Duration(el / pct * (1 - pct) * float64(time.Second)).Round(time.Second)
		line += fmt.Sprintf(", %.0f%%, ETA %s", 100*pct, eta)
	}
	if final {
		line += fmt.Sprintf(" in %s", now.Sub(p.start).Round(time.Millisecond))
	}
	fmt.Fprintln(p.w, line)
}

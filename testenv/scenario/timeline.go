package scenario

import (
	"time"
)

// Second is one second of a run, counted from its first message.
type Second struct {
	// T is the second's offset from the start.
	T int
	// Hub counts the messages the hub took in (queue files it created,
	// including those a milter refused) by kind.
	Hub map[string]int
	// Acted counts loopbreaker's actions in this second.
	Acted int
	// Blocks lists the blocks that started in this second.
	Blocks []Decision
}

// buildTimeline counts, second by second, what the hub took in and what
// loopbreaker did.
func buildTimeline(r *Result, hub *maillog) []Second {
	kindOf := map[string]string{}
	for _, c := range r.Ledger.Copies {
		if c.MessageID != "" {
			kindOf[c.MessageID] = c.Kind
		}
	}
	start := r.Start.Truncate(time.Second)
	n := int(r.Stopped/time.Second) + 2
	secs := func(t time.Time) int {
		s := int(t.Sub(start) / time.Second)
		if s < 0 {
			s = 0
		}
		return s
	}
	out := make([]Second, n)
	for i := range out {
		out[i] = Second{T: i, Hub: map[string]int{}}
	}
	grow := func(s int) {
		for len(out) <= s {
			out = append(out, Second{T: len(out), Hub: map[string]int{}})
		}
	}
	for _, qf := range hub.order {
		if qf.msgID == "" || qf.created.Before(start) {
			continue
		}
		k := kindOf[qf.msgID]
		if k == "" {
			k = "other"
			if qf.parentNDR != "" || qf.from == "" && qf.client == "" {
				k = "ndr"
			}
		}
		s := secs(qf.created)
		grow(s)
		out[s].Hub[k]++
	}
	for _, d := range r.Decisions {
		if d.Time.Before(start) {
			continue
		}
		s := secs(d.Time)
		grow(s)
		if d.Acted() {
			out[s].Acted++
		}
		if d.Msg == "block started" {
			out[s].Blocks = append(out[s].Blocks, d)
		}
	}
	return out
}

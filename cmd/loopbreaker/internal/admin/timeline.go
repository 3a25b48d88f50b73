package admin

import (
	"net/http"
	"sync"
	"time"

	"github.com/loopbreaker/loopbreaker/loopdetect/classify"
	"github.com/loopbreaker/loopbreaker/loopdetect/engine"
	"github.com/loopbreaker/loopbreaker/state"
)

// TimelineMinutes is how far back the admin page's chart reaches: the
// daemon keeps one count per minute and kind for this many minutes.
const TimelineMinutes = 6 * 60

// maxSpans bounds the block spans the timeline remembers.
const maxSpans = 500

// Timeline counts the messages the engine decides, per minute and kind, in
// a ring covering the last TimelineMinutes minutes, and remembers the
// blocks started in that time. It is an engine.Observer; memory is fixed
// (a few tens of kilobytes) whatever the traffic. The admin page draws it
// (GET /v1/timeline).
type Timeline struct {
	mu     sync.Mutex
	now    func() time.Time
	minute [TimelineMinutes]int64 // Unix minute each slot holds
	counts [TimelineMinutes][4]int
	spans  []Span
}

// Span is one block on the timeline.
type Span struct {
	Rule  string    `json:"rule"`
	Key   string    `json:"key"`
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
	// Messages is how many messages the block has acted on (0 when the
	// block is no longer in force and the number is unknown).
	Messages int `json:"messages"`
	// Active says the block is in force now.
	Active bool `json:"active"`
}

// TimelineView is GET /v1/timeline's answer: Counts[i] are the messages of
// the minute beginning at Start+i*Step seconds (Unix), by kind in the order
// of Kinds; the last one is the current minute.
type TimelineView struct {
	Start  int64    `json:"start"`
	Step   int64    `json:"step"`
	Now    int64    `json:"now"`
	Kinds  []string `json:"kinds"`
	Counts [][]int  `json:"counts"`
	Blocks []Span   `json:"blocks"`
	Rules  []string `json:"rules"`
}

var _ engine.Observer = (*Timeline)(nil)

// NewTimeline returns an empty timeline.
func NewTimeline() *Timeline { return &Timeline{now: time.Now} }

func kindSlot(k classify.Kind) int {
	for i, x := range classify.Kinds {
		if x == k && i < 4 {
			return i
		}
	}
	return 0
}

// Decided counts the message and notes a block it started.
func (t *Timeline) Decided(d *engine.Decision, _ time.Duration) {
	now := t.now()
	m := now.Unix() / 60
	i := int(m % TimelineMinutes)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.minute[i] != m {
		t.minute[i], t.counts[i] = m, [4]int{}
	}
	t.counts[i][kindSlot(d.Verdict.Kind)]++
	if d.NewBlock {
		if len(t.spans) >= maxSpans {
			t.spans = append(t.spans[:0], t.spans[len(t.spans)-maxSpans/2:]...)
		}
		t.spans = append(t.spans, Span{Rule: d.Rule, Key: d.Key, Since: now, Until: d.Until, Messages: d.Acted})
	}
}

// Counted does nothing.
func (t *Timeline) Counted(time.Duration, error) {}

// Failed does nothing.
func (t *Timeline) Failed(string) {}

// View is the timeline now, its spans reconciled with the blocks in force:
// a block in force gives its span's times and count; a remembered span
// whose block is gone before its end (released) ends now.
func (t *Timeline) View(inForce []state.Block) TimelineView {
	now := t.now()
	m := now.Unix() / 60
	first := m - TimelineMinutes + 1
	v := TimelineView{Start: first * 60, Step: 60, Now: now.Unix(), Counts: make([][]int, TimelineMinutes), Blocks: []Span{}}
	for _, k := range classify.Kinds {
		v.Kinds = append(v.Kinds, string(k))
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for j := range TimelineMinutes {
		mm := first + int64(j)
		i := int(mm % TimelineMinutes)
		if t.minute[i] == mm {
			c := t.counts[i]
			v.Counts[j] = c[:len(v.Kinds)]
		} else {
			v.Counts[j] = make([]int, len(v.Kinds))
		}
	}
	type rk struct{ rule, key string }
	current := map[rk]state.Block{}
	for _, b := range inForce {
		current[rk{b.Rule, b.Key}] = b
	}
	used := map[rk]bool{}
	windowStart := time.Unix(v.Start, 0)
	kept := t.spans[:0]
	for _, s := range t.spans {
		if s.Until.Before(windowStart) {
			continue // out of the chart for good
		}
		k := rk{s.Rule, s.Key}
		if b, ok := current[k]; ok && !used[k] && b.Since.Sub(s.Since).Abs() < time.Minute {
			s.Since, s.Until, s.Messages, s.Active = b.Since, b.Until, b.Count, true
			used[k] = true
		} else {
			s.Active = false
			if s.Until.After(now) {
				s.Until = now // lifted before its end
			}
		}
		kept = append(kept, s)
		v.Blocks = append(v.Blocks, s)
	}
	t.spans = kept
	for _, b := range inForce {
		if k := (rk{b.Rule, b.Key}); !used[k] && b.Until.After(windowStart) {
			// Started before this daemon (or by another one sharing Redis).
			v.Blocks = append(v.Blocks, Span{Rule: b.Rule, Key: b.Key, Since: b.Since, Until: b.Until, Messages: b.Count, Active: true})
		}
	}
	return v
}

func (s *Server) timeline(w http.ResponseWriter, _ *http.Request) {
	if s.Timeline == nil {
		fail(w, http.StatusNotFound, "this daemon keeps no timeline")
		return
	}
	v := s.Timeline.View(s.Store.Blocks())
	for _, r := range s.Engine.Policy().Rules {
		v.Rules = append(v.Rules, r.Name)
	}
	reply(w, v)
}

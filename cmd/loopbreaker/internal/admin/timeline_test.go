package admin

import (
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/loopdetect/classify"
	"github.com/loopbreaker/loopbreaker/loopdetect/engine"
	"github.com/loopbreaker/loopbreaker/state"
)

func TestTimelineCountsPerMinuteAndSpans(t *testing.T) {
	now := time.Date(2026, 3, 1, 10, 0, 30, 0, time.UTC)
	tl := NewTimeline()
	tl.now = func() time.Time { return now }
	decide := func(kind classify.Kind, newBlock bool) {
		d := &engine.Decision{Verdict: classify.Verdict{Kind: kind}}
		if newBlock {
			d.NewBlock, d.Rule, d.Key, d.Until, d.Acted = true, "forward-storm", "alice@corp.example", now.Add(time.Hour), 1
		}
		tl.Decided(d, 0)
	}
	for i := 0; i < 3; i++ {
		decide(classify.KindOrdinary, false)
	}
	now = now.Add(time.Minute)
	for i := 0; i < 25; i++ {
		decide(classify.KindForwardedNDR, false)
	}
	decide(classify.KindForwardedNDR, true)
	since := now
	now = now.Add(2 * time.Minute)

	block := state.Block{Rule: "forward-storm", Key: "alice@corp.example", Since: since, Until: since.Add(time.Hour), Count: 7}
	v := tl.View([]state.Block{block})
	n := len(v.Counts)
	if n != TimelineMinutes || v.Step != 60 || v.Start+int64(n-1)*60 != now.Unix()/60*60 {
		t.Fatalf("geometry: start %d step %d n %d now %d", v.Start, v.Step, n, now.Unix())
	}
	if got := v.Counts[n-4]; got[0] != 3 {
		t.Fatalf("minute -3: %v", got)
	}
	if got := v.Counts[n-3]; got[2] != 26 {
		t.Fatalf("minute -2: %v", got)
	}
	if len(v.Blocks) != 1 || !v.Blocks[0].Active || v.Blocks[0].Messages != 7 || !v.Blocks[0].Until.Equal(block.Until) {
		t.Fatalf("spans: %+v", v.Blocks)
	}
	// Released: the span ends when the page next looks.
	now = now.Add(time.Minute)
	v = tl.View(nil)
	if len(v.Blocks) != 1 || v.Blocks[0].Active || !v.Blocks[0].Until.Equal(now) {
		t.Fatalf("released span: %+v", v.Blocks)
	}
	// Six hours on, the minutes and the span have left the chart and the
	// ring holds the new minute only.
	now = now.Add(7 * time.Hour)
	decide(classify.KindBounce, false)
	v = tl.View(nil)
	total := 0
	for _, c := range v.Counts {
		for _, x := range c {
			total += x
		}
	}
	if total != 1 || len(v.Blocks) != 0 || v.Counts[len(v.Counts)-1][1] != 1 {
		t.Fatalf("after 7 hours: total %d, spans %+v", total, v.Blocks)
	}
}

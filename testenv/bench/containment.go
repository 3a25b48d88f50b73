package bench

import (
	"context"
	"fmt"
	"io"
	"time"
)

// StormLimit is the default policy's forward-storm limit.
const StormLimit = 25

// ContainmentConfig sizes the containment section.
type ContainmentConfig struct {
	Trials   int // storms, each from its own sender
	Sessions int // concurrent sessions feeding each storm
	PerSess  int // messages per session
}

// Trial is one storm.
type Trial struct {
	Sender string
	Sent   int
	Passed int // accepted untouched; the limit lets StormLimit through
	// Beyond is Passed - StormLimit: must be 0.
	Beyond int
	// LateOK counts messages that passed although their end of message was
	// sent after the crossing message's reply had arrived: must be 0.
	LateOK int
	// Crossing is the (limit+1)th message's decision latency (end of
	// message to reply), which includes committing the block to disk.
	Crossing time.Duration
	// FirstOther is, over the other sessions, the latency of the first
	// blocked decision each saw after the crossing; the slowest of them.
	FirstOther time.Duration
	// InForce is from the crossing message's end of message to the first
	// blocked reply in another session: how soon others see the block.
	InForce time.Duration
	// Others says another session had a message redirected after the
	// crossing (else FirstOther and InForce are not measured).
	Others bool
}

// RunContainment feeds Trials storms, each from Sessions concurrent
// sessions, to the milter at t and checks that exactly StormLimit messages
// of each pass.
func RunContainment(ctx context.Context, t *Target, cfg ContainmentConfig, progress io.Writer) ([]Trial, error) {
	var out []Trial
	for k := 0; k < cfg.Trials; k++ {
		sender := fmt.Sprintf("storm%d.%d@%s", k, time.Now().UnixNano()%1e6, LocalDomain)
		n := cfg.Sessions * cfg.PerSess
		res, err := Drive(ctx, t.Addr, cfg.Sessions, n, func(i int) *Mail { return Storm(sender, i) })
		if err != nil {
			return nil, err
		}
		tr := Trial{Sender: sender, Sent: n, Passed: res.Outcomes[Passed]}
		tr.Beyond = max(0, tr.Passed-StormLimit)
		// The crossing message carries count=limit+1 in its X-Loopbreaker.
		cross := -1
		for i, tm := range res.Timings {
			if tm.Outcome == Redirected && infoCount(tm.Info) == StormLimit+1 {
				cross = i
			}
		}
		if cross < 0 {
			return nil, fmt.Errorf("%w: no message crossed the limit (%v)", ErrNotAStorm, res.Outcomes)
		}
		c := res.Timings[cross]
		tr.Crossing = c.Done.Sub(c.EOMSent)
		first := map[int]Timing{}
		for _, tm := range res.Timings {
			if tm.Seq == c.Seq {
				continue
			}
			if tm.Outcome == Passed && tm.EOMSent.After(c.Done) {
				tr.LateOK++
			}
			if tm.Outcome != Redirected || tm.Worker == c.Worker || tm.Done.Before(c.EOMSent) {
				continue
			}
			if f, ok := first[tm.Worker]; !ok || tm.Done.Before(f.Done) {
				first[tm.Worker] = tm
			}
		}
		var inForce time.Duration = -1
		for _, f := range first {
			tr.FirstOther = max(tr.FirstOther, f.Done.Sub(f.EOMSent))
			if d := f.Done.Sub(c.EOMSent); inForce < 0 || d < inForce {
				inForce = d
			}
		}
		tr.InForce = max(inForce, 0)
		tr.Others = len(first) > 0
		fmt.Fprintf(progress, "  containment trial %d: %d sent, %d passed (beyond the limit: %d), crossing decision %s, first blocked reply elsewhere %s after it\n",
			k+1, tr.Sent, tr.Passed, tr.Beyond, Dur(tr.Crossing), Dur(tr.InForce))
		out = append(out, tr)
	}
	return out, nil
}

// WriteContainmentTable summarizes the trials as a Markdown table.
func WriteContainmentTable(w io.Writer, cfg ContainmentConfig, ts []Trial) {
	var beyond, late, sent, passed int
	var cross, other, inForce []time.Duration
	for _, t := range ts {
		beyond += t.Beyond
		late += t.LateOK
		sent += t.Sent
		passed += t.Passed
		cross = append(cross, t.Crossing)
		if t.Others {
			other = append(other, t.FirstOther)
			inForce = append(inForce, t.InForce)
		}
	}
	fmt.Fprintln(w, "| storms | sessions × messages each | sent | passed (limit 25 per storm) | **passed beyond the limit** | passed although sent after the crossing decision was out | crossing decision: end of message → reply, block committed to disk (p50 / max) | block in force for the others: crossing's end of message → first redirect in another session (p50 / max) | each other session's first redirected message, end of message → reply (p50 / max) |")
	fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|---|---|---|")
	fmt.Fprintf(w, "| %d | %d × %d | %d | %d | **%d** | %d | %s / %s | %s / %s | %s / %s |\n",
		len(ts), cfg.Sessions, cfg.PerSess, sent, passed, beyond, late,
		Dur(Percentile(cross, 50)), Dur(Percentile(cross, 100)),
		Dur(Percentile(inForce, 50)), Dur(Percentile(inForce, 100)),
		Dur(Percentile(other, 50)), Dur(Percentile(other, 100)))
}

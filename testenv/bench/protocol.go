package bench

import (
	"context"
	"fmt"
	"io"
	"time"
)

// Target is a milter under test.
type Target struct {
	Name string
	Addr string // 127.0.0.1:PORT, or a unix socket's path
	// Proc is the milter's process, for its CPU time; nil when it runs in
	// the benchmark's own process (the smoke test).
	Proc *Proc
	// Tree counts the CPU time of the process's children too (rspamd's
	// workers).
	Tree bool
}

func (t *Target) cpu() time.Duration {
	if t.Proc == nil {
		return 0
	}
	if t.Tree {
		return ChildrenCPUTime(t.Proc.Pid())
	}
	return t.Proc.CPUTime()
}

// ProtocolConfig sizes the bare-protocol section.
type ProtocolConfig struct {
	Rounds   int   // alternating rounds per cell
	Messages int   // messages per round and milter
	Conc     []int // concurrent sessions, e.g. 1 and 16
}

// Cell is one milter's numbers in one row.
type Cell struct {
	Rates     []float64 // messages/s per round
	Latencies []time.Duration
	CPU       time.Duration // the milter process's CPU time over all rounds
	Messages  int
	Outcomes  [numOutcomes]int
}

// CPUPerMsg is the milter's CPU time per message.
func (c *Cell) CPUPerMsg() time.Duration {
	if c.Messages == 0 {
		return 0
	}
	return c.CPU / time.Duration(c.Messages)
}

func (c *Cell) add(r *RunResult, cpu time.Duration) {
	c.Rates = append(c.Rates, r.PerSecond())
	c.Latencies = append(c.Latencies, r.Latencies()...)
	c.CPU += cpu
	c.Messages += r.N
	for i, n := range r.Outcomes {
		c.Outcomes[i] += n
	}
}

// ProtocolRow is loopbreaker against the pass-through for one mail kind
// and concurrency.
type ProtocolRow struct {
	Mail   string
	Conc   int
	LB, PT Cell
	Ratios []float64 // loopbreaker/pass-through rate, per round
}

// Mails of the bare-protocol section.
var protocolMails = []struct {
	name string
	gen  func(i int) *Mail
}{
	{"ordinary", Ordinary},
	{"storm", func(i int) *Mail { return Storm("storm.sender@"+LocalDomain, i) }},
}

// RunProtocol drives loopbreaker and the pass-through alternately (the
// order flips every round) with the same messages, for each mail kind and
// concurrency, and returns a row per cell. progress gets one line per round.
func RunProtocol(ctx context.Context, lb, pt *Target, cfg ProtocolConfig, progress io.Writer) ([]ProtocolRow, error) {
	var rows []ProtocolRow
	for _, mail := range protocolMails {
		for _, conc := range cfg.Conc {
			row := ProtocolRow{Mail: mail.name, Conc: conc}
			// Warm up both: connections, page cache, the storm's block.
			for _, t := range []*Target{lb, pt} {
				if _, err := Drive(ctx, t.Addr, conc, max(cfg.Messages/5, 30), mail.gen); err != nil {
					return nil, fmt.Errorf("warm-up %s: %w", t.Name, err)
				}
			}
			for r := 0; r < cfg.Rounds; r++ {
				order := []*Target{lb, pt}
				if r%2 == 1 {
					order = []*Target{pt, lb}
				}
				rates := map[*Target]float64{}
				for _, t := range order {
					c0 := t.cpu()
					res, err := Drive(ctx, t.Addr, conc, cfg.Messages, mail.gen)
					if err != nil {
						return nil, fmt.Errorf("%s, %s mail, %d sessions: %w", t.Name, mail.name, conc, err)
					}
					cell := &row.PT
					if t == lb {
						cell = &row.LB
					}
					cell.add(res, t.cpu()-c0)
					rates[t] = res.PerSecond()
				}
				row.Ratios = append(row.Ratios, rates[lb]/rates[pt])
				fmt.Fprintf(progress, "  protocol %-8s c=%-2d round %d: loopbreaker %7.0f/s  pass-through %7.0f/s  (%.2f×)\n",
					mail.name, conc, r+1, rates[lb], rates[pt], rates[lb]/rates[pt])
			}
			if mail.name == "storm" && row.LB.Outcomes[Redirected] == 0 {
				return nil, fmt.Errorf("%w: %v", ErrNotAStorm, row.LB.Outcomes)
			}
			rows = append(rows, row)
		}
	}
	return rows, nil
}

// WriteProtocolTable prints the rows as a Markdown table.
func WriteProtocolTable(w io.Writer, rows []ProtocolRow) {
	fmt.Fprintln(w, "| mail | sessions | loopbreaker msg/s | pass-through msg/s | ratio (median, min–max) | loopbreaker p50 / p99 | pass-through p50 / p99 | milter CPU per msg, loopbreaker / pass-through | loopbreaker outcomes |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---|---|---|---|---|")
	for _, r := range rows {
		lo, hi := MinMax(r.Ratios)
		fmt.Fprintf(w, "| %s | %d | %.0f | %.0f | **%.2f×** (%.2f–%.2f) | %s / %s | %s / %s | %s / %s | %s |\n",
			r.Mail, r.Conc, Median(r.LB.Rates), Median(r.PT.Rates), Median(r.Ratios), lo, hi,
			Dur(Percentile(r.LB.Latencies, 50)), Dur(Percentile(r.LB.Latencies, 99)),
			Dur(Percentile(r.PT.Latencies, 50)), Dur(Percentile(r.PT.Latencies, 99)),
			cpuStr(r.LB.CPUPerMsg()), cpuStr(r.PT.CPUPerMsg()), outcomes(r.LB.Outcomes))
	}
}

func cpuStr(d time.Duration) string {
	if d == 0 {
		return "–"
	}
	return Dur(d)
}

func outcomes(o [numOutcomes]int) string {
	s := ""
	for i, n := range o {
		if n == 0 {
			continue
		}
		if s != "" {
			s += ", "
		}
		s += fmt.Sprintf("%d %s", n, Outcome(i))
	}
	return s
}

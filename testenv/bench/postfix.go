package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv/postfix"
	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// Paths of Postfix's test tools (Debian's postfix package).
const (
	SMTPSourceCmd = "/usr/sbin/smtp-source"
	SMTPSinkCmd   = "/usr/sbin/smtp-sink"
)

// PostfixConfig sizes the end-to-end section.
type PostfixConfig struct {
	Rounds   int // rounds; each runs every configuration once, in rotating order
	Messages int // messages per round and configuration
	Sessions int // smtp-source -s
	// Body is the message body's size in bytes; 0 keeps Ordinary's.
	Body int
	Dir  string
}

// PostfixCell is one configuration's numbers.
type PostfixCell struct {
	Name      string
	Target    *Target   // nil: no milter
	Inject    []float64 // messages/s accepted by smtpd (smtp-source's wall time)
	EndToEnd  []float64 // messages/s until the queue is empty again (delivered to smtp-sink)
	MilterCPU time.Duration
	// PostfixCPU is the CPU time of every Postfix process of the
	// instance; ToolsCPU that of smtp-source and smtp-sink.
	PostfixCPU time.Duration
	ToolsCPU   time.Duration
	Messages   int
}

// CPUPerMsg is all the CPU time a message cost in this configuration:
// Postfix, the milter, smtp-source and smtp-sink.
func (c *PostfixCell) CPUPerMsg() time.Duration {
	if c.Messages == 0 {
		return 0
	}
	return (c.PostfixCPU + c.MilterCPU + c.ToolsCPU) / time.Duration(c.Messages)
}

// PostfixResult holds the three configurations and the per-round ratios
// to "no milter".
type PostfixResult struct {
	Cells      []*PostfixCell
	InjRatios  map[string][]float64 // by cell name
	E2ERatios  map[string][]float64
	Version    string
	SourceArgs string
	Sessions   int // smtp-source -s
}

// RunPostfix runs one private Postfix with three smtpd services, one
// without a milter, one with the pass-through, one with loopbreaker, all
// relaying to one smtp-sink, and sends the same smtp-source load through
// each in rotating order (ABC, BCA, CAB, ...).
//
// extra milters (e.g. a candidate build of loopbreaker) get an smtpd of
// their own and join the rotation.
func RunPostfix(ctx context.Context, lb, pt *Target, cfg PostfixConfig, progress io.Writer, extra ...*Target) (*PostfixResult, error) {
	if err := postfix.Available(); err != nil {
		return nil, err
	}
	for _, p := range []string{SMTPSourceCmd, SMTPSinkCmd} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%s is missing (Debian's postfix package ships it): %w", p, err)
		}
	}
	sinkPort, err := testproc.FreePort(ctx, "")
	if err != nil {
		return nil, err
	}
	sinkAddr := "127.0.0.1:" + strconv.Itoa(sinkPort)
	sink, err := StartProc(ctx, "smtp-sink", cfg.Dir, sinkAddr, SMTPSinkCmd, "-u", "nobody", sinkAddr, "256")
	if err != nil {
		return nil, err
	}
	defer sink.Kill()

	cells := []*PostfixCell{{Name: "no milter"}, {Name: "pass-through", Target: pt}, {Name: "loopbreaker", Target: lb}}
	for _, t := range extra {
		cells = append(cells, &PostfixCell{Name: t.Name, Target: t})
	}
	ports := make([]int, len(cells))
	var master []string
	for i := range cells {
		if ports[i], err = testproc.FreePort(ctx, ""); err != nil {
			return nil, err
		}
		if i == 0 {
			continue // the instance's own smtpd
		}
		spec := "inet:" + cells[i].Target.Addr
		if testproc.Network(cells[i].Target.Addr) == "unix" {
			spec = "unix:" + cells[i].Target.Addr
		}
		master = append(master, fmt.Sprintf("127.0.0.1:%d inet n - n - - smtpd -o smtpd_milters=%s", ports[i], spec))
	}
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	inst, err := postfix.Start(startCtx, postfix.Config{
		Dir:       cfg.Dir,
		Name:      "bench",
		SMTPAddr:  "127.0.0.1:" + strconv.Itoa(ports[0]),
		RelayHost: "[127.0.0.1]:" + strconv.Itoa(sinkPort),
		MasterCF:  master,
		MainCF: map[string]string{
			// Same for every smtpd: a milter that fails shows as errors,
			// not as mail passing unfiltered.
			"milter_default_action": "tempfail",
		},
	})
	cancel()
	if err != nil {
		return nil, err
	}
	defer inst.Stop()
	version, _ := inst.Postconf("-h", "mail_version")

	msgFile := filepath.Join(cfg.Dir, "message.txt")
	m := Ordinary(1)
	if cfg.Body > 0 {
		m.Body = TextBody(cfg.Body)
	}
	// smtp-source appends CRLF to each line of the file.
	if err := os.WriteFile(msgFile, bytes.ReplaceAll(m.Bytes(), []byte("\r\n"), []byte("\n")), 0o644); err != nil {
		return nil, err
	}
	from, to := "user1@"+LocalDomain, "contact1@partner1.example"
	args := func(port string, n int) []string {
		return []string{"-s", strconv.Itoa(cfg.Sessions), "-m", strconv.Itoa(n), "-f", from, "-t", to,
			"-F", msgFile, "-M", "client.example", "127.0.0.1:" + port}
	}
	res := &PostfixResult{Cells: cells, InjRatios: map[string][]float64{}, E2ERatios: map[string][]float64{},
		Version: strings.TrimSpace(version), Sessions: cfg.Sessions,
		SourceArgs: strings.ReplaceAll(strings.Join(args("PORT", cfg.Messages), " "), msgFile, "MESSAGE")}

	mailConfig := "MAIL_CONFIG=" + inst.ConfigDir()
	run := func(i, n int) (inj, e2e float64, err error) {
		c := cells[i]
		var cpu0 time.Duration
		if c.Target != nil {
			cpu0 = c.Target.cpu()
		}
		pf0, sink0 := TreeCPUTime(mailConfig), sink.CPUTime()
		start := time.Now()
		cmd := exec.CommandContext(ctx, SMTPSourceCmd, args(strconv.Itoa(ports[i]), n)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, 0, fmt.Errorf("smtp-source via %s: %w\n%s", c.Name, err, out)
		}
		injected := time.Since(start)
		wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		err = inst.WaitQueueEmpty(wctx)
		cancel()
		if err != nil {
			return 0, 0, err
		}
		delivered := time.Since(start)
		if c.Target != nil {
			c.MilterCPU += c.Target.cpu() - cpu0
		}
		c.PostfixCPU += TreeCPUTime(mailConfig) - pf0
		c.ToolsCPU += sink.CPUTime() - sink0 + cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		return float64(n) / injected.Seconds(), float64(n) / delivered.Seconds(), nil
	}
	// Warm-up: start smtpd, cleanup, smtp processes and connections for each.
	for i := range cells {
		if _, _, err := run(i, max(cfg.Messages/10, 20)); err != nil {
			return nil, err
		}
		cells[i].MilterCPU, cells[i].PostfixCPU, cells[i].ToolsCPU = 0, 0, 0
	}
	for r := 0; r < cfg.Rounds; r++ {
		inj := make([]float64, len(cells))
		e2e := make([]float64, len(cells))
		for k := range cells {
			i := (r + k) % len(cells)
			if inj[i], e2e[i], err = run(i, cfg.Messages); err != nil {
				return nil, err
			}
			cells[i].Inject = append(cells[i].Inject, inj[i])
			cells[i].EndToEnd = append(cells[i].EndToEnd, e2e[i])
			cells[i].Messages += cfg.Messages
		}
		for i := 1; i < len(cells); i++ {
			res.InjRatios[cells[i].Name] = append(res.InjRatios[cells[i].Name], inj[i]/inj[0])
			res.E2ERatios[cells[i].Name] = append(res.E2ERatios[cells[i].Name], e2e[i]/e2e[0])
		}
		line := fmt.Sprintf("  postfix round %d: end to end  none %5.0f/s", r+1, e2e[0])
		for i := 1; i < len(cells); i++ {
			line += fmt.Sprintf("  %s %5.0f/s (%.2f×)", cells[i].Name, e2e[i], e2e[i]/e2e[0])
		}
		fmt.Fprintln(progress, line)
	}
	if n := countMilterErrors(inst.Log()); n > 0 {
		return nil, fmt.Errorf("postfix logged %d milter errors; the numbers would be wrong", n)
	}
	return res, nil
}

// countMilterErrors counts milter trouble in the maillog.
func countMilterErrors(log string) int {
	n := 0
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "milter") && (strings.Contains(l, "warning") || strings.Contains(l, "error")) {
			n++
		}
	}
	return n
}

// WritePostfixTable prints the end-to-end numbers as a Markdown table.
func WritePostfixTable(w io.Writer, r *PostfixResult) {
	fmt.Fprintln(w, "| smtpd with | end to end msg/s (queue empty) | **end to end vs no milter** (median, min–max) | accepted msg/s (smtp-source) | accepted vs no milter | CPU per msg: all (Postfix + milter + tools) | of which the milter | CPU capacity vs no milter |")
	fmt.Fprintln(w, "|---|---:|---|---:|---|---|---|---|")
	base := r.Cells[0].CPUPerMsg()
	for i, c := range r.Cells {
		e2e, inj := "1.00× (baseline)", "1.00×"
		if i > 0 {
			lo, hi := MinMax(r.E2ERatios[c.Name])
			e2e = fmt.Sprintf("**%.2f×** (%.2f–%.2f)", Median(r.E2ERatios[c.Name]), lo, hi)
			lo, hi = MinMax(r.InjRatios[c.Name])
			inj = fmt.Sprintf("%.2f× (%.2f–%.2f)", Median(r.InjRatios[c.Name]), lo, hi)
		}
		milterCPU := "–"
		if c.Messages > 0 && c.MilterCPU > 0 {
			milterCPU = Dur(c.MilterCPU / time.Duration(c.Messages))
		}
		capacity := "n/a"
		if all := c.CPUPerMsg(); all > 0 {
			capacity = fmt.Sprintf("%.2f×", float64(base)/float64(all))
		}
		fmt.Fprintf(w, "| %s | %.0f | %s | %.0f | %s | %s | %s | %s |\n", c.Name, Median(c.EndToEnd), e2e, Median(c.Inject), inj,
			cpuStr(c.CPUPerMsg()), milterCPU, capacity)
	}
}

// Cell returns the configuration named name, or nil.
func (r *PostfixResult) Cell(name string) *PostfixCell {
	for _, c := range r.Cells {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// FloorPairs are the comparisons with the floor: each configuration
// against the floor milter on the same transport.
var FloorPairs = [][2]string{
	{"loopbreaker", "floor"},
	{"loopbreaker unix", "floor unix"},
	{"loopbreaker B", "floor"},
	{"pass-through", "floor"},
	{"rspamd", "floor"},
	{"floor stock", "floor"},
}

// WriteFloorTable prints each configuration against the floor (per-round
// ratios of the end-to-end rates, median and min–max, and the ratio of the
// CPU per message), and the wall time each adds to a message's SMTP
// session over no milter: a delayed-ACK stall shows as about 40 ms.
func WriteFloorTable(w io.Writer, r *PostfixResult) {
	if r.Cell("floor") != nil {
		fmt.Fprintln(w, "| smtpd with | **vs the floor on the same transport** (end to end, median of per-round ratios, min–max) | CPU capacity vs the floor |")
		fmt.Fprintln(w, "|---|---|---|")
		for _, p := range FloorPairs {
			a, b := r.Cell(p[0]), r.Cell(p[1])
			if a == nil || b == nil || len(a.EndToEnd) != len(b.EndToEnd) {
				continue
			}
			var ratios []float64
			for i := range a.EndToEnd {
				ratios = append(ratios, a.EndToEnd[i]/b.EndToEnd[i])
			}
			lo, hi := MinMax(ratios)
			capacity := "n/a"
			if a.CPUPerMsg() > 0 {
				capacity = fmt.Sprintf("%.2f×", float64(b.CPUPerMsg())/float64(a.CPUPerMsg()))
			}
			fmt.Fprintf(w, "| %s vs %s | **%.2f×** (%.2f–%.2f) | %s |\n", p[0], p[1], Median(ratios), lo, hi, capacity)
		}
		fmt.Fprintln(w)
	}
	if r.Sessions != 1 {
		return // with many sessions at once, waiting for the CPU hides a stall
	}
	base := r.Cells[0]
	fmt.Fprintln(w, "Stall check: the wall time each configuration adds to a message's SMTP session over no milter (one session at a time: 1 / accepted msg/s, medians). A delayed-ACK stall (the milter's kernel holds its ACK of Postfix's packet up to 40 ms, Postfix's Nagle holds its next packet for that ACK) shows as about 40 ms per message.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| smtpd with | session time per message | added by the milter | stall? |")
	fmt.Fprintln(w, "|---|---|---|---|")
	perMsg := func(c *PostfixCell) time.Duration {
		return time.Duration(float64(time.Second) / Median(c.Inject))
	}
	for _, c := range r.Cells {
		added, stall := "–", ""
		if c != base {
			d := perMsg(c) - perMsg(base)
			added = Dur(d)
			stall = "no"
			if d > 20*time.Millisecond {
				stall = "**yes**"
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", c.Name, Dur(perMsg(c)), added, stall)
	}
}

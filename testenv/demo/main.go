// Command demo runs one of the three mail-loop incidents with real Postfix
// instances on loopback addresses, first without loopbreaker and then with
// it, and prints what a postmaster wants to watch: messages per second by
// kind, when the block came, where every message ended, what was held or
// quarantined and how to release it.
//
//	go run ./testenv/demo -scenario forward-storm|list-loop|ping-pong|redirect-storm|fleet
//
// The fleet scenario is the list loop over six hubs, each with its own
// loopbreaker, sharing one Redis Cluster, with a loopbreaker and a Redis
// master killed mid-storm; its first run is the list loop on one hub with
// loopbreaker, the total the fleet is to stop at.
//
// It needs root and Debian's postfix package (make deps); `make demo
// SCENARIO=...` runs it.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv"
	"github.com/loopbreaker/loopbreaker/testenv/postfix"
	"github.com/loopbreaker/loopbreaker/testenv/scenario"
)

func main() {
	name := flag.String("scenario", scenario.ForwardStorm, "the incident: "+strings.Join(scenario.Names, ", "))
	policyFile := flag.String("policy", "", "loopbreaker policy file (default: the built-in policy)")
	bounces := flag.Bool("bounce-milter", false, "also send the hub's own bounces through loopbreaker (non_smtpd_milters, internal_mail_filter_classes = bounce)")
	rcpt := flag.Bool("reject-at-rcpt", false, "list-loop: the outside refuses the invalid member at RCPT TO, so the hub makes the NDRs itself")
	only := flag.Bool("only-with", false, "skip the run without loopbreaker")
	loopCap := flag.Int("cap", 100, "loop budget: how many loop steps the run without loopbreaker may take (fleet: 500)")
	flag.Parse()
	capSet := false
	flag.Visit(func(f *flag.Flag) { capSet = capSet || f.Name == "cap" })
	if *name == scenario.Fleet && !capSet {
		// Above the fleet's failover bound, so that loopbreaker and not
		// the budget stops the second loop.
		*loopCap = 500
	}
	if err := run(*name, *policyFile, *bounces, *rcpt, *only, *loopCap); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(name, policyFile string, bounces, rcpt, only bool, loopCap int) error {
	if err := postfix.Available(); err != nil {
		return fmt.Errorf("%w (run it as root after make deps)", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "loopbreaker-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	policy := ""
	if policyFile != "" {
		b, err := os.ReadFile(policyFile)
		if err != nil {
			return err
		}
		policy = string(b)
	}
	fmt.Println("building loopbreaker ...")
	bin, err := build(ctx, dir)
	if err != nil {
		return err
	}
	o := scenario.Options{Scenario: name, Policy: policy, BounceMilter: bounces, LoopCap: loopCap, MaxDuration: 2 * time.Minute}
	if rcpt {
		m := scenario.RejectAtRCPT
		o.Outside = &m
	}
	o.Progress = func(s scenario.Status) {
		line := fmt.Sprintf("  +%2.0fs  loop steps %3d  %-44s hub queue: active %d deferred %d hold %d",
			s.Elapsed.Seconds(), s.BudgetUsed, steps(s.Steps), s.HubQueue["active"]+s.HubQueue["incoming"], s.HubQueue["deferred"], s.HubQueue["hold"])
		if o.DaemonBin != "" {
			line += fmt.Sprintf("  loopbreaker acted %d", s.Acted)
			if len(s.Blocks) > 0 {
				line += fmt.Sprintf("  BLOCKED (%s)", s.Blocks[0].Rule)
			}
		}
		fmt.Println(line)
	}
	if !only && name == scenario.Fleet {
		// The fleet is to stop at one MTA's total: show that first.
		o.DaemonBin = bin
		fmt.Printf("\n### list-loop on one hub with loopbreaker: the total the fleet is to stop at\n")
		one := o
		one.Scenario, one.DaemonBin, one.LoopCap = scenario.ListLoop, bin, 100
		one.Dir = filepath.Join(dir, "one")
		if err := os.Mkdir(one.Dir, 0o755); err != nil {
			return err
		}
		r, err := scenario.Run(ctx, one)
		if err != nil {
			return err
		}
		fmt.Println()
		r.Report(os.Stdout)
	} else if !only {
		fmt.Printf("\n### %s without loopbreaker: the loop runs until the demo's budget of %d loop steps stops it\n", name, loopCap)
		o.Dir = filepath.Join(dir, "without")
		if err := os.Mkdir(o.Dir, 0o755); err != nil {
			return err
		}
		r, err := scenario.Run(ctx, o)
		if err != nil {
			return err
		}
		// The same report as the run with loopbreaker (afterStop): the
		// header, the timeline, the fates, the ordinary mail.
		fmt.Println()
		r.Report(os.Stdout)
	}

	if name == scenario.Fleet {
		fmt.Printf("\n### %s: the list loop over %d hubs, each with its own loopbreaker, on one Redis Cluster; a loopbreaker and a Redis master killed mid-storm (budget %d loop steps)\n",
			name, scenario.FleetHubs, loopCap)
	} else {
		fmt.Printf("\n### %s with loopbreaker: the same loop, the same budget of %d loop steps\n", name, loopCap)
	}
	o.DaemonBin = bin
	o.Dir = filepath.Join(dir, "with")
	if err := os.Mkdir(o.Dir, 0o755); err != nil {
		return err
	}
	o.AfterStop = afterStop(bin)
	r, err := scenario.Run(ctx, o)
	if err == nil && r.Mailbox != nil {
		// The temporary directory goes when the demo ends: keep the looping
		// user's mailbox and say how to replay it.
		_, err = r.Mailbox.Keep(os.Stdout, filepath.Join("demo-out", name), "go run ./cmd/loopbreaker")
	}
	return err
}

// afterStop shows, with the world still running, what the postmaster would
// look at: the hold queue, a quarantined message's headers, the blocks.
func afterStop(bin string) func(w *scenario.World, r *scenario.Result) error {
	return func(w *scenario.World, r *scenario.Result) error {
		fmt.Println()
		r.Report(os.Stdout)
		if n, _ := w.Hub.HeldCount(); n > 0 {
			out, _ := w.Hub.Postqueue("-p")
			fmt.Printf("\n$ postqueue -p    # on the hub; '!' marks held messages\n%s", indent(firstLines(out, 12)))
		}
		for _, m := range w.HubStore.Messages() {
			if len(m.To) == 1 && strings.EqualFold(m.To[0], scenario.Quarantine) {
				fmt.Printf("\na message in the quarantine mailbox %s:\n", scenario.Quarantine)
				for _, k := range []string{"From", "To", "Subject", "X-Loopbreaker", "X-Loopbreaker-Original-Recipients"} {
					fmt.Printf("  %s: %s\n", k, m.Header.Get(k))
				}
				break
			}
		}
		if w.Daemon == nil {
			return nil
		}
		sock := filepath.Join(filepath.Dir(w.Daemon.State), "admin.sock")
		cmd := exec.Command(bin, "blocks", "-admin", sock)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err == nil {
			fmt.Printf("\n$ loopbreaker blocks\n%s", indent(out.String()))
			if b, ok := r.FirstBlock(); ok {
				fmt.Printf("once the cause is fixed, lift the block early with: loopbreaker release %s -rule %s\n", shellQuote(b.Key), b.Rule)
			}
		} else {
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				return err
			}
		}
		return nil
	}
}

func build(ctx context.Context, dir string) (string, error) {
	return testenv.Build(ctx, dir, "./cmd/loopbreaker", false)
}

func steps(m map[string]int) string {
	var parts []string
	for _, k := range []string{scenario.StepForward, scenario.StepNDR, scenario.StepAutoReply} {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", scenario.StepLabel(k), m[k]))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " '\"$\\`!*?[]{}()<>|&;#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ") + "\n"
}

func firstLines(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) > n {
		lines = append(lines[:n], "...\n")
	}
	return strings.Join(lines, "")
}

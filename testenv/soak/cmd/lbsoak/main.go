// Command lbsoak runs the soak test (`make soak`, issue 9): it measures what
// a private Postfix alone sustains here, then sends mixed ordinary and storm
// mail at a fraction of that (80 %) through Postfix and loopbreaker for
// -duration, sampling the daemon's RSS and goroutines from its metrics
// endpoint, and accounts for every message at the end. Exit status 1 when
// memory grew, goroutines grew or a message is unaccounted for.
//
// It needs root and Debian's postfix package.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv/soak"
)

func main() {
	var cfg soak.Config
	var keep bool
	flag.DurationVar(&cfg.Duration, "duration", 30*time.Minute, "loaded phase")
	flag.DurationVar(&cfg.Baseline, "baseline", 60*time.Second, "Postfix-alone measurement")
	flag.Float64Var(&cfg.Fraction, "fraction", 0.8, "fraction of the Postfix-alone rate to send at")
	flag.DurationVar(&cfg.Sample, "sample", 30*time.Second, "metrics sampling interval")
	flag.IntVar(&cfg.Workers, "sessions", 16, "concurrent SMTP sessions")
	flag.StringVar(&cfg.Daemon, "daemon", "", "loopbreaker binary (default: build ./cmd/loopbreaker)")
	flag.BoolVar(&keep, "keep", false, "keep the work directory")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "lbsoak")
	if err != nil {
		fmt.Fprintln(os.Stderr, "lbsoak:", err)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755) // Postfix's daemons must traverse it
	cfg.Dir = dir
	if !keep {
		defer os.RemoveAll(dir)
	} else {
		fmt.Println("lbsoak: work directory", dir)
	}
	res, err := soak.Run(ctx, cfg, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "lbsoak:", err)
		stop()
		os.Exit(1)
	}
	if !res.Report(os.Stdout) {
		fmt.Println("lbsoak: FAIL")
		stop()
		os.Exit(1)
	}
	fmt.Println("lbsoak: PASS")
}

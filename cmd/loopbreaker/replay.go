package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/loopbreaker/loopbreaker/cmd/loopbreaker/internal/replay"
)

var replayCommand = &command{
	name: "replay", args: "SOURCE...", minArgs: 1, maxArgs: -1,
	summary: "run stored mail (mbox, Maildir, .eml) through the policy and report what it would have done",
	doc: `Runs stored mail through the daemon's own classifier, policy and engine, each message at the time it carries (its topmost Received, else the Received below Delivered-To, else Date:), in time order, and reports what the daemon would have done: the blocks (when, started by which message, how long, on what), the ordinary messages a rule would have touched, the busiest keys' peak counts against their limits.

SOURCE is an mbox file (mboxo or mboxrd), a Maildir, a directory of message files (read recursively), or - for an mbox on stdin.

-mailbox inbound (the default): an inbox; the recipient is X-Original-To, else Delivered-To, else To/Cc; the sender Return-Path, else the mbox From line. -mailbox outbound: a Sent folder; From: is the sender, To/Cc/Bcc the recipients.

-set forward-storm.limit=10,25,50 replays once per value (fields: limit, window, block_for, action) and reports when each would have stopped the storms; several -set flags with several values try every combination. State is counted in a temporary file unless -state names one; never the daemon's own state file.

The exit status is 0 when the sources were replayed (bad messages among them are reported, not fatal), 1 when a source or the policy could not be read.`,
	setup: replaySetup,
}

// runReplay runs loopbreaker replay with args and returns the exit status.
func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return replayCommand.run(ctx, args, stdout, stderr)
}

func replaySetup(fset *flag.FlagSet) runFunc {
	var f serveFlags
	fset.StringVar(&f.policyFile, "policy", "", "policy `FILE` (default $"+envPolicy+", else the built-in policy)")
	fset.StringVar(&f.localDomains, "local-domains", "", "comma-separated local `DOMAINS` (overrides the policy)")
	fset.StringVar(&f.quarantine, "quarantine-mailbox", "", "quarantine mailbox `ADDR` for redirect (overrides the policy)")
	var sets []replay.Set
	fset.Func("set", "`RULE.FIELD=V,V`: change a rule's limit, window, block_for or action; several values: a what-if run per value", func(s string) error {
		set, err := replay.ParseSet(s)
		if err == nil {
			sets = append(sets, set)
		}
		return err
	})
	mailbox := fset.String("mailbox", "inbound", "whose `MAILBOX` the SOURCEs are: inbound (an inbox) or outbound (a Sent folder)")
	statePath := fset.String("state", "", "count in this state `FILE`, kept afterwards (default: a temporary one; never the daemon's)")
	asJSON := fset.Bool("json", false, "print the report as JSON")
	htmlPath := fset.String("html", "", "also write the report to this `FILE`, a self-contained HTML page with a timeline chart")
	quiet := fset.Bool("q", false, "no progress on stderr")
	return func(ctx context.Context, sources []string, stdout, stderr io.Writer) error {
		mb, err := replay.ParseMailbox(*mailbox)
		if err != nil {
			return usageError(err.Error())
		}
		if f.policyFile == "" {
			f.policyFile = os.Getenv(envPolicy)
		}
		p, err := loadPolicy(&f)
		if err != nil {
			return fmt.Errorf("policy not loaded: %w", err)
		}
		if *statePath != "" {
			if daemon, ok := daemonStateFile(*statePath, p.StateFile); ok {
				return usageError(fmt.Sprintf("-state %s is the daemon's state file (%s); a replay must not count into it: give another path, or none for a temporary one", *statePath, daemon))
			}
		}
		cfg := replay.Config{
			Policy: p, Sets: sets, Mailbox: mb, StatePath: *statePath, Stdin: os.Stdin,
			// The engine's and the store's warnings (a failed count), never the decisions.
			Log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		}
		if !*quiet {
			cfg.Progress = stderr
		}
		rep, err := replay.Run(ctx, cfg, sources)
		if err != nil {
			return err
		}
		if *htmlPath != "" {
			if err := writeHTMLReport(*htmlPath, rep); err != nil {
				return err
			}
			if !*quiet {
				fmt.Fprintf(stderr, "replay: HTML report in %s\n", *htmlPath)
			}
		}
		if *asJSON {
			return rep.WriteJSON(stdout)
		}
		return rep.WriteText(stdout)
	}
}

func writeHTMLReport(path string, rep *replay.Report) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := rep.WriteHTML(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// daemonStateFile says whether path is a state file the daemon would use:
// the system default, $LOOPBREAKER_STATE, or the policy's state_file.
func daemonStateFile(path, policyState string) (string, bool) {
	same := func(a, b string) bool {
		if a == "" || b == "" {
			return false
		}
		if filepath.Clean(a) == filepath.Clean(b) {
			return true
		}
		aa, err1 := filepath.Abs(a)
		bb, err2 := filepath.Abs(b)
		if err1 == nil && err2 == nil && aa == bb {
			return true
		}
		fa, err1 := os.Stat(a)
		fb, err2 := os.Stat(b)
		return err1 == nil && err2 == nil && os.SameFile(fa, fb)
	}
	for _, d := range []string{defaultSystemState, os.Getenv(envState), policyState} {
		if same(path, d) {
			return strings.TrimSpace(d), true
		}
	}
	return "", false
}

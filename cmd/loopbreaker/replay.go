package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/loopbreaker/loopbreaker/cmd/loopbreaker/internal/replay"
)

const replayUsage = `usage: loopbreaker replay [-policy FILE] [-local-domains D,D] [-quarantine-mailbox ADDR]
                          [-set RULE.FIELD=VALUE[,VALUE...] ...] [-mailbox inbound|outbound]
                          [-state FILE] [-json] [-html REPORT.html] [-q] SOURCE...

Runs stored mail through the daemon's own classifier, policy and engine, each
message at the time it carries (its topmost Received, else the Received below
Delivered-To, else Date:), in time order, and reports what the daemon would
have done: the blocks (when, started by which message, how long, on what),
the ordinary messages a rule would have touched, the busiest keys' peak
counts against their limits.

SOURCE is an mbox file (mboxo or mboxrd), a Maildir, a directory of message
files (read recursively), or - for an mbox on stdin.

-mailbox inbound (the default): an inbox; the recipient is X-Original-To,
else Delivered-To, else To/Cc; the sender Return-Path, else the mbox From line.
-mailbox outbound: a Sent folder; From: is the sender, To/Cc/Bcc the recipients.

-set forward-storm.limit=10,25,50 replays once per value (fields: limit,
window, block_for, action) and reports when each would have stopped the
storms; several -set flags with several values try every combination.
State is counted in a temporary file unless -state names one; never give it
the daemon's own state file.
`

// runReplay implements `loopbreaker replay`. It returns the exit code: 0
// when the sources were replayed (bad messages among them are reported,
// not fatal), 1 when a source or the policy could not be read, 2 on a
// usage error.
func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("replay", flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.Usage = func() {
		fmt.Fprint(stderr, replayUsage)
		fset.PrintDefaults()
	}
	var f serveFlags
	fset.StringVar(&f.policyFile, "policy", os.Getenv(envPolicy), "policy file (default: the built-in policy; $"+envPolicy+")")
	fset.StringVar(&f.localDomains, "local-domains", "", "comma-separated local domains (overrides the policy)")
	fset.StringVar(&f.quarantine, "quarantine-mailbox", "", "quarantine mailbox for redirect (overrides the policy)")
	var sets []replay.Set
	fset.Func("set", "RULE.FIELD=VALUE[,VALUE...]: change a rule's limit, window, block_for or action; several values: a what-if run per value", func(s string) error {
		set, err := replay.ParseSet(s)
		if err == nil {
			sets = append(sets, set)
		}
		return err
	})
	mailbox := fset.String("mailbox", "inbound", "whose mailbox the SOURCEs are: inbound (an inbox) or outbound (a Sent folder)")
	statePath := fset.String("state", "", "count in this state file, kept afterwards (default: a temporary one; never the daemon's)")
	asJSON := fset.Bool("json", false, "print the report as JSON")
	htmlPath := fset.String("html", "", "also write the report as a self-contained HTML page with a timeline chart")
	quiet := fset.Bool("q", false, "no progress on stderr")
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fset.NArg() == 0 {
		fmt.Fprintln(stderr, "loopbreaker replay: no SOURCE given")
		fset.Usage()
		return 2
	}
	mb, err := replay.ParseMailbox(*mailbox)
	if err != nil {
		fmt.Fprintln(stderr, "loopbreaker replay:", err)
		return 2
	}
	p, err := loadPolicy(&f)
	if err != nil {
		fmt.Fprintln(stderr, "loopbreaker replay: policy not loaded:", err)
		return 1
	}
	if *statePath != "" {
		if daemon, ok := daemonStateFile(*statePath, p.StateFile); ok {
			fmt.Fprintf(stderr, "loopbreaker replay: -state %s is the daemon's state file (%s); a replay must not count into it: give another path, or none for a temporary one\n", *statePath, daemon)
			return 2
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
	rep, err := replay.Run(ctx, cfg, fset.Args())
	if err != nil {
		fmt.Fprintln(stderr, "loopbreaker replay:", err)
		return 1
	}
	if *htmlPath != "" {
		if err := writeHTMLReport(*htmlPath, rep); err != nil {
			fmt.Fprintln(stderr, "loopbreaker replay:", err)
			return 1
		}
		if !*quiet {
			fmt.Fprintf(stderr, "replay: HTML report in %s\n", *htmlPath)
		}
	}
	if *asJSON {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "loopbreaker replay:", err)
		return 1
	}
	return 0
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

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/loopbreaker/loopbreaker/cmd/loopbreaker/internal/admin"
	"github.com/loopbreaker/loopbreaker/state"
)

// runAdmin runs one of the CLI commands that talk to the daemon's admin
// socket: status, blocks, release, events, explain.
func runAdmin(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("admin", "", adminFlagUsage)
	asJSON := fs.Bool("json", false, "print JSON, for scripts")
	rule := fs.String("rule", "", "release: only this rule's blocks (alone: all of them)")
	n := fs.Int("n", 50, "events: how many")
	// Flags may come after the KEY argument too ("release alice@x -rule r").
	var positional []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	c := admin.NewClient(adminSockets(*socket)...)
	out := func(v any, text func(w *tabwriter.Writer)) int {
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			_ = enc.Encode(v)
			return 0
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		text(tw)
		tw.Flush()
		return 0
	}
	failed := func(err error) int {
		fmt.Fprintf(stderr, "loopbreaker %s: %v\n", cmd, err)
		return 1
	}
	wantArgs := map[string]int{"status": 0, "blocks": 0, "events": 0, "explain": 1, "release": -1}[cmd]
	if (wantArgs >= 0 && len(positional) != wantArgs) || (cmd == "release" && len(positional) > 1) {
		fmt.Fprintf(stderr, "loopbreaker %s: unexpected arguments %q\n", cmd, positional)
		return 2
	}

	switch cmd {
	case "status":
		var st admin.Status
		if err := c.Do(ctx, http.MethodGet, "/v1/status", nil, nil, &st); err != nil {
			return failed(err)
		}
		return out(st, func(w *tabwriter.Writer) {
			fmt.Fprintf(w, "version\t%s\nrunning since\t%s\nmilter socket\t%s\nstate file\t%s\npolicy\t%s\nrules\t%s\nlocal domains\t%s\nquarantine mailbox\t%s\ntracked keys\t%d\nactive blocks\t%d\n",
				st.Version, st.Started.Format(time.RFC3339), st.Listen, st.StateFile, st.Policy,
				strings.Join(st.Rules, ", "), strings.Join(st.LocalDomains, ", "), st.Quarantine, st.TrackedKeys, st.ActiveBlocks)
			fmt.Fprintf(w, "backend\t%s\n", backendText(st.Backend))
			for _, n := range st.PolicyNotes {
				fmt.Fprintf(w, "note\t%s\n", n)
			}
		})
	case "blocks":
		var bs []state.Block
		if err := c.Do(ctx, http.MethodGet, "/v1/blocks", nil, nil, &bs); err != nil {
			return failed(err)
		}
		return out(bs, func(w *tabwriter.Writer) { printBlocks(w, bs) })
	case "release":
		req := admin.ReleaseRequest{Rule: *rule}
		if len(positional) == 1 {
			req.Key = positional[0]
		}
		if req.Key == "" && req.Rule == "" {
			fmt.Fprintln(stderr, "usage: loopbreaker release KEY [-rule NAME] | release -rule NAME")
			return 2
		}
		var bs []state.Block
		if err := c.Do(ctx, http.MethodPost, "/v1/release", nil, req, &bs); err != nil {
			return failed(err)
		}
		if len(bs) == 0 && !*asJSON {
			fmt.Fprintln(stdout, "no block matched")
			return 0
		}
		return out(bs, func(w *tabwriter.Writer) {
			fmt.Fprintf(w, "released %d block(s):\n", len(bs))
			printBlocks(w, bs)
		})
	case "events":
		var evs []state.Event
		if err := c.Do(ctx, http.MethodGet, "/v1/events", url.Values{"n": {strconv.Itoa(*n)}}, nil, &evs); err != nil {
			return failed(err)
		}
		return out(evs, func(w *tabwriter.Writer) {
			fmt.Fprintln(w, "TIME\tQUEUE ID\tACTION\tRULE\tKEY\tCOUNT\tSUBJECT")
			for _, e := range evs {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\n", e.Time.Format(time.RFC3339), dash(e.QueueID), e.Action, e.Rule, e.Key, e.Count, e.Limit, e.Subject)
			}
		})
	case "explain":
		var ex []admin.Explained
		if err := c.Do(ctx, http.MethodGet, "/v1/explain", url.Values{"key": {positional[0]}}, nil, &ex); err != nil {
			return failed(err)
		}
		return out(ex, func(w *tabwriter.Writer) {
			fmt.Fprintln(w, "RULE\tCOUNT\tLIMIT\tWINDOW\tBLOCKED UNTIL")
			for _, e := range ex {
				until := "-"
				if e.Block != nil {
					until = e.Block.Until.Format(time.RFC3339)
				}
				fmt.Fprintf(w, "%s\t%d\t%d\t%s\t%s\n", e.Rule, e.Count, e.Limit, e.Window, until)
			}
		})
	}
	return 2
}

const adminFlagUsage = "the daemon's admin socket (default: $" + admin.EnvAdmin + "; else, for the state file $" + envState +
	" names, where that daemon puts it; else " + "/run/loopbreaker/" + admin.SocketName + ", then /var/lib/loopbreaker/" + admin.SocketName + ")"

// adminSockets are the admin sockets to try, in order: -admin, else
// $LOOPBREAKER_ADMIN, else where the daemon of $LOOPBREAKER_STATE puts it,
// else the installed daemon's places (admin.Layout).
func adminSockets(flagValue string) []string {
	if flagValue != "" {
		return []string{flagValue}
	}
	if env := os.Getenv(admin.EnvAdmin); env != "" {
		return []string{env}
	}
	return admin.Installed.Candidates(os.Getenv(envState), admin.SocketName)
}

// backendText is the status line of the state backend, e.g.
// "redis redis://10.0.0.5:6379/0: DEGRADED since ... (fail mode open: counting in the state file)".
func backendText(b state.BackendStatus) string {
	s := b.Name
	if s == "" {
		s = "bbolt"
	}
	if b.Address != "" {
		s += " " + b.Address
	}
	if !b.Degraded {
		if b.Outages > 0 {
			s += fmt.Sprintf(" (ok; %d outage(s) so far)", b.Outages)
		}
		return s
	}
	s += " DEGRADED"
	if !b.DegradedSince.IsZero() {
		s += " since " + b.DegradedSince.Format(time.RFC3339)
	}
	if b.LastError != "" {
		s += ": " + b.LastError
	}
	switch {
	case b.Name == "redis" && b.FailMode == "pass":
		s += " (fail mode pass: counting nothing until Redis is back)"
	case b.Name == "redis":
		s += " (fail mode open: counting in the state file until Redis is back)"
	}
	return s
}

func printBlocks(w io.Writer, bs []state.Block) {
	fmt.Fprintln(w, "RULE\tKEY\tSINCE\tUNTIL\tACTED ON\tSAMPLE")
	for _, b := range bs {
		sample := ""
		if len(b.Samples) > 0 {
			sample = b.Samples[0]
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\n", b.Rule, b.Key, b.Since.Format(time.RFC3339), b.Until.Format(time.RFC3339), b.Count, sample)
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

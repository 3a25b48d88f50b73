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
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/loopbreaker/loopbreaker/cmd/loopbreaker/internal/admin"
	"github.com/loopbreaker/loopbreaker/state"
)

// adminOptions are the flags every admin command has.
type adminOptions struct {
	socket string
	json   bool
}

func adminFlags(fs *flag.FlagSet) *adminOptions {
	o := &adminOptions{}
	fs.StringVar(&o.socket, "admin", "", adminFlagUsage)
	fs.BoolVar(&o.json, "json", false, "print JSON, for scripts")
	return o
}

func (o *adminOptions) client() *admin.Client { return admin.NewClient(adminSockets(o.socket)...) }

// print writes v as JSON with -json, else as the table text writes.
func (o *adminOptions) print(stdout io.Writer, v any, text func(w *tabwriter.Writer)) error {
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	text(tw)
	return tw.Flush()
}

// show is an admin command that only reads: it GETs path (with query) from
// the daemon's admin API into a T and prints it, as JSON with -json, else
// as the table text writes.
func show[T any](ctx context.Context, o *adminOptions, stdout io.Writer, path string, query url.Values, text func(*tabwriter.Writer, T)) error {
	var v T
	if err := o.client().Do(ctx, http.MethodGet, path, query, nil, &v); err != nil {
		return err
	}
	return o.print(stdout, v, func(w *tabwriter.Writer) { text(w, v) })
}

const adminDoc = `Talks to the running daemon over its admin socket. Without -admin the socket is $LOOPBREAKER_ADMIN; else, when $LOOPBREAKER_STATE names a state file, where the daemon of that file puts it (beside it); else /run/loopbreaker/admin.sock (the systemd unit's daemon), then /var/lib/loopbreaker/admin.sock. When no daemon answers, the error names each socket tried and why.`

var statusCommand = &command{
	name:    "status",
	summary: "show what the running daemon runs, with which policy; tracked keys, active blocks",
	doc:     adminDoc,
	setup: func(fs *flag.FlagSet) runFunc {
		o := adminFlags(fs)
		return func(ctx context.Context, _ []string, stdout, _ io.Writer) error {
			return show(ctx, o, stdout, "/v1/status", nil, func(w *tabwriter.Writer, st admin.Status) {
				fmt.Fprintf(w, "version\t%s\nrunning since\t%s\nmilter socket\t%s\nstate file\t%s\npolicy\t%s\nmode\t%s\nrules\t%s\nlocal domains\t%s\nquarantine mailbox\t%s\ntracked keys\t%d\nactive blocks\t%d\n",
					st.Version, st.Started.Format(time.RFC3339), st.Listen, st.StateFile, st.Policy, modeText(st.Mode),
					strings.Join(st.Rules, ", "), strings.Join(st.LocalDomains, ", "), st.Quarantine, st.TrackedKeys, st.ActiveBlocks)
				fmt.Fprintf(w, "name\t%s\nbackend\t%s\n", dash(st.Name), backendText(st.Backend))
				for _, n := range st.PolicyNotes {
					fmt.Fprintf(w, "note\t%s\n", n)
				}
			})
		}
	},
}

var blocksCommand = &command{
	name:    "blocks",
	summary: "list the blocks in force: rule, key, action (\"would redirect\" in monitor mode), since, until, messages acted on, a sample subject",
	doc:     adminDoc,
	setup: func(fs *flag.FlagSet) runFunc {
		o := adminFlags(fs)
		return func(ctx context.Context, _ []string, stdout, _ io.Writer) error {
			return show(ctx, o, stdout, "/v1/blocks", nil, printBlockViews)
		}
	},
}

var releaseCommand = &command{
	name: "release", args: "[KEY]", maxArgs: 1,
	summary: "lift the blocks on KEY (-rule NAME narrows it; -rule alone lifts all of a rule's blocks)",
	doc:     "A released key starts a fresh count. Flags may also follow KEY: the admin mail prints \"loopbreaker release KEY -rule NAME\".\n\n" + adminDoc,
	setup: func(fs *flag.FlagSet) runFunc {
		o := adminFlags(fs)
		rule := fs.String("rule", "", "only the blocks of the rule `NAME`; without KEY, all of its blocks")
		return func(ctx context.Context, args []string, stdout, _ io.Writer) error {
			req := admin.ReleaseRequest{Rule: *rule}
			if len(args) == 1 {
				req.Key = args[0]
			}
			if req.Key == "" && req.Rule == "" {
				return usageError("missing KEY or -rule NAME")
			}
			var bs []state.Block
			if err := o.client().Do(ctx, http.MethodPost, "/v1/release", nil, req, &bs); err != nil {
				return err
			}
			if len(bs) == 0 && !o.json {
				fmt.Fprintln(stdout, "no block matched")
				return nil
			}
			return o.print(stdout, bs, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "released %d block(s):\n", len(bs))
				printBlocks(w, bs)
			})
		}
	},
}

var eventsCommand = &command{
	name:    "events",
	summary: "show the audit trail: the last acted-on decisions, with queue ids",
	doc:     "The state file keeps the last 1000 decisions. Daemons sharing a Redis share one trail of the last 1000 (a capped Redis stream): the events of any of them list the decisions of all, and an MTA column says which daemon decided (serve -name). In monitor mode nothing is acted on: ACTION says what would have been done (\"would redirect\"), and -json has \"action\": \"none\" with \"would_action\".\n\n" + adminDoc,
	setup: func(fs *flag.FlagSet) runFunc {
		o := adminFlags(fs)
		n := fs.Int("n", 50, "how many decisions (`N`), the most recent last")
		return func(ctx context.Context, _ []string, stdout, _ io.Writer) error {
			if *n <= 0 {
				return usageError("-n must be positive")
			}
			return show(ctx, o, stdout, "/v1/events", url.Values{"n": {strconv.Itoa(*n)}}, printEvents)
		}
	},
}

var explainCommand = &command{
	name: "explain", args: "KEY", minArgs: 1, maxArgs: 1,
	summary: "show every rule's count and block for KEY",
	doc:     "KEY is what a rule counts by: a sender, a recipient, \"sender recipient\", an original Message-ID.\n\n" + adminDoc,
	setup: func(fs *flag.FlagSet) runFunc {
		o := adminFlags(fs)
		return func(ctx context.Context, args []string, stdout, _ io.Writer) error {
			return show(ctx, o, stdout, "/v1/explain", url.Values{"key": {args[0]}}, func(w *tabwriter.Writer, ex []admin.Explained) {
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
	},
}

const adminFlagUsage = "the daemon's admin `SOCKET` (default: $" + admin.EnvAdmin + ", else looked for as described above)"

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

// modeText is the status line of the mode.
func modeText(mode string) string {
	switch mode {
	case "monitor":
		return "monitor: rules count and blocks start and end, but no message is acted on (events and blocks say what would be done)"
	case "":
		return "enforce"
	}
	return mode
}

// actionText is an action as the tables show it: "would redirect" for
// monitor mode's would-action (nothing was done), else the action.
func actionText(action, would string) string {
	if would != "" {
		return "would " + would
	}
	return dash(action)
}

// printEvents is the table of the audit trail; with an MTA column when an
// event carries the name of the daemon that decided (a trail shared in
// Redis by several).
func printEvents(w *tabwriter.Writer, evs []state.Event) {
	fleet := slices.ContainsFunc(evs, func(e state.Event) bool { return e.MTA != "" })
	mta := func(e state.Event) string {
		if !fleet {
			return ""
		}
		return dash(e.MTA) + "\t"
	}
	if fleet {
		fmt.Fprint(w, "TIME\tMTA\tQUEUE ID\tACTION\tRULE\tKEY\tCOUNT\tSUBJECT\n")
	} else {
		fmt.Fprint(w, "TIME\tQUEUE ID\tACTION\tRULE\tKEY\tCOUNT\tSUBJECT\n")
	}
	for _, e := range evs {
		fmt.Fprintf(w, "%s\t%s%s\t%s\t%s\t%s\t%d/%d\t%s\n", e.Time.Format(time.RFC3339), mta(e), dash(e.QueueID), actionText(e.Action, e.WouldAction), e.Rule, e.Key, e.Count, e.Limit, e.Subject)
	}
}

// printBlockViews is the table of blocks in force, with what each does.
func printBlockViews(w *tabwriter.Writer, bs []admin.BlockView) {
	fmt.Fprintln(w, "RULE\tKEY\tACTION\tSINCE\tUNTIL\tACTED ON\tSAMPLE")
	for _, b := range bs {
		sample := ""
		if len(b.Samples) > 0 {
			sample = b.Samples[0]
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", b.Rule, b.Key, actionText(b.Action, b.WouldAction), b.Since.Format(time.RFC3339), b.Until.Format(time.RFC3339), b.Count, sample)
	}
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

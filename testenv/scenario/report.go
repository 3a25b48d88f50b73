package scenario

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
)

// Title names the run in one line.
func (r *Result) Title() string {
	with := "without loopbreaker"
	if r.WithLoopbreaker {
		with = "with loopbreaker"
		if r.BounceMilter {
			with += " (smtpd and the hub's own bounces: non_smtpd_milters, internal_mail_filter_classes = bounce)"
		} else {
			with += " (smtpd_milters only)"
		}
	}
	if len(r.Hubs) > 1 {
		with += fmt.Sprintf(", on %d hubs", len(r.Hubs))
		if r.WithLoopbreaker {
			with += " sharing one Redis Cluster"
		}
	}
	return fmt.Sprintf("%s %s; %s", r.Scenario, with, r.Outside)
}

// Summary says in a few lines how the loop went.
func (r *Result) Summary() string {
	var b strings.Builder
	steps := make([]string, 0, len(r.Spent))
	for _, k := range sortedKeys(r.Spent) {
		steps = append(steps, k)
	}
	acted := 0
	for _, d := range r.Decisions {
		if d.Acted() {
			acted++
		}
	}
	var how string
	switch {
	case r.TimedOut:
		how = "the loop was still running when the run's time ran out"
	case r.CapReached:
		how = "the loop ran until the run's loop budget stopped it"
	case r.WithLoopbreaker && len(r.Blocks) > 0:
		how = fmt.Sprintf("loopbreaker stopped the loop (block at +%s, rule %s)", since(r.Blocks[0].Time.Sub(r.Start)), r.Blocks[0].Rule)
	case r.WithLoopbreaker && acted > 0:
		how = "loopbreaker stopped the loop (it acted on the loop's messages without a block)"
	case r.WithLoopbreaker:
		how = "the loop ended without loopbreaker acting: the MTAs ended it"
	default:
		how = "the loop ended before the loop budget: the MTAs ended it"
	}
	for i, k := range steps {
		steps[i] = fmt.Sprintf("%s %d", StepLabel(k), r.Spent[k])
	}
	hubs := "hub"
	if len(r.Hubs) > 1 {
		hubs = "hubs"
	}
	fmt.Fprintf(&b, "%s after %s: loop budget %d, used %d (%s); %d loop messages (copies of forwards, NDRs, auto-replies); NDRs made: %s %d, outside %d\n",
		how, since(r.Stopped), r.LoopCap, sum(r.Spent), strings.Join(steps, ", "), r.LoopMessages(), hubs, r.HubNDRs(), r.Ledger.NDRs["outside"])
	for _, f := range r.Faults {
		fmt.Fprintf(&b, "fault at +%s: %s\n", since(f.Time.Sub(r.Start)), f.What)
	}
	if r.WithLoopbreaker {
		fmt.Fprintf(&b, "loopbreaker logged %d decisions, %d of them actions\n", len(r.Decisions), acted)
		if len(r.Blocks) == 0 {
			b.WriteString("loopbreaker started no block\n")
		}
		for _, d := range r.Blocks {
			at := ""
			if len(r.Hubs) > 1 {
				at = " on " + d.Hub
			}
			fmt.Fprintf(&b, "block at +%s%s: rule %s, key %q: the %s %s message against a limit of %d -> %s, blocked until %s\n",
				since(d.Time.Sub(r.Start)), at, d.Rule, d.Key, Ordinal(d.Count), d.Kind, d.Limit, d.Action, d.Until)
		}
		if len(r.Hubs) > 1 {
			l1, l2 := r.LoopNDRs()
			fmt.Fprintf(&b, "NDRs loopbreaker passed / refused: loop 1 (up to the first block) %d / %d, loop 2 (the post sent then) %d / %d\n",
				l1.Passed, l1.Refused, l2.Passed, l2.Refused)
		}
	}
	if r.Ledger.FailedBounces > 0 {
		fmt.Fprintf(&b, "the hub's bounce daemon had %d NDRs refused by the milter (\"bounce failed\": the original waits in the deferred queue)\n", r.Ledger.FailedBounces)
	}
	return b.String()
}

// Report writes what a postmaster wants to watch: the summary, the
// timeline, every copy's fate, the ordinary mail, what was held or
// quarantined and how to release it.
func (r *Result) Report(w io.Writer) {
	fmt.Fprintf(w, "== %s\n%s\n", r.Title(), r.Summary())
	r.WriteTimeline(w)
	fmt.Fprintln(w)
	r.WriteFates(w)
	fmt.Fprintln(w)
	r.WriteOrdinary(w)
	r.WriteHeld(w)
}

// StepLabel names a kind of loop step (the budget's StepForward, StepNDR,
// StepAutoReply) in the words of the progress lines and the summary. A
// StepForward is any message the rule forwards, the first one or an NDR;
// the tables' "forward" kind is only the first one, so the two are
// worded apart.
func StepLabel(step string) string {
	switch step {
	case StepForward:
		return "messages the rule forwarded"
	case StepNDR:
		return "NDRs"
	case StepAutoReply:
		return "auto-replies"
	}
	return step
}

// kindLegend says what the tables' kinds of loop message are, for those
// in kinds.
func kindLegend(kinds []string) string {
	meaning := map[string]string{
		"forward":       "forward = the first message, as the rule forwarded it",
		"forwarded-ndr": "forwarded-ndr = an NDR the rule forwarded",
		"ndr":           "ndr = a non-delivery report",
		"auto-reply":    "auto-reply = an automatic answer",
	}
	var parts []string
	for _, k := range kinds {
		if m, ok := meaning[k]; ok {
			parts = append(parts, m)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "(" + strings.Join(parts, "; ") + ")"
}

// WriteTimeline writes messages per second by kind, as the hub took them
// in, with loopbreaker's actions.
func (r *Result) WriteTimeline(w io.Writer) {
	kinds := []string{"ordinary", "forward", "forwarded-ndr", "ndr", "auto-reply"}
	seen := map[string]bool{}
	for _, s := range r.Timeline {
		for k := range s.Hub {
			seen[k] = true
		}
	}
	for _, k := range sortedKeys(seen) {
		if !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	used := make([]string, 0, len(seen))
	for _, k := range kinds {
		if seen[k] {
			used = append(used, k)
		}
	}
	if len(r.Hubs) > 1 {
		fmt.Fprintf(w, "messages the %d hubs took in, per second, by kind:\n", len(r.Hubs))
	} else {
		fmt.Fprintln(w, "messages the hub took in, per second, by kind:")
	}
	if l := kindLegend(used); l != "" {
		fmt.Fprintln(w, l)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "second\t")
	for _, k := range kinds {
		fmt.Fprintf(tw, "%s\t", k)
	}
	fmt.Fprint(tw, "loopbreaker acted\t\n")
	last := len(r.Timeline) - 1
	for last > 0 && empty(r.Timeline[last]) {
		last--
	}
	for _, s := range r.Timeline[:last+1] {
		fmt.Fprintf(tw, "+%d\t", s.T)
		for _, k := range kinds {
			fmt.Fprintf(tw, "%s\t", blank(s.Hub[k]))
		}
		fmt.Fprintf(tw, "%s\t", blank(s.Acted))
		for _, d := range s.Blocks {
			fmt.Fprintf(tw, " <- block: %s %s", d.Rule, d.Action)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

func empty(s Second) bool { return len(s.Hub) == 0 && s.Acted == 0 && len(s.Blocks) == 0 }

// WriteFates writes the fate of every copy, by kind; each row sums up.
func (r *Result) WriteFates(w io.Writer) {
	fmt.Fprintln(w, "every copy (one message to one recipient) and where it ended:")
	if l := kindLegend(r.Ledger.Kinds()); l != "" {
		fmt.Fprintln(w, l)
	}
	var used []Fate
	for _, f := range Fates {
		if r.Ledger.Count("", f) > 0 {
			used = append(used, f)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "kind\tmade\t")
	for _, f := range used {
		fmt.Fprintf(tw, "%s\t", f)
	}
	fmt.Fprintln(tw)
	for _, k := range append(r.Ledger.Kinds(), "") {
		name := k
		if k == "" {
			name = "total"
		}
		fmt.Fprintf(tw, "%s\t%d\t", name, r.Ledger.Made(k))
		for _, f := range used {
			fmt.Fprintf(tw, "%s\t", blank(r.Ledger.Count(k, f)))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	reasons := map[string]int{}
	for _, c := range r.Ledger.Copies {
		switch c.Fate {
		case Rejected, Bounced, TempFailed, Deferred, Discarded:
			reasons[fmt.Sprintf("%s %s: %s", c.Kind, c.Fate, shortReason(c.Reason))]++
		}
	}
	keys := sortedKeys(reasons)
	sort.SliceStable(keys, func(i, j int) bool { return reasons[keys[i]] > reasons[keys[j]] })
	for _, k := range keys {
		fmt.Fprintf(w, "  %4d x %s\n", reasons[k], k)
	}
	if len(r.Ledger.Problems) == 0 {
		fmt.Fprintln(w, "nothing unaccounted for")
	}
	for _, p := range r.Ledger.Problems {
		fmt.Fprintln(w, "UNACCOUNTED:", p)
	}
}

// WriteOrdinary writes what happened to the ordinary mail sent during the
// storm.
func (r *Result) WriteOrdinary(w io.Writer) {
	if len(r.Ordinary) == 0 {
		return
	}
	fmt.Fprintln(w, "ordinary mail sent during the storm:")
	fates := r.OrdinaryFates()
	for _, s := range r.Ordinary {
		var parts []string
		for _, c := range fates[s.Subject] {
			parts = append(parts, fmt.Sprintf("%s %s", c.To, c.Fate))
		}
		if s.Err != nil {
			parts = append(parts, "refused: "+s.Err.Error())
		}
		fmt.Fprintf(w, "  +%s %q %s -> %s: %s\n", since(s.Time.Sub(r.Start)), s.Subject, s.From, strings.Join(s.To, ", "), strings.Join(parts, "; "))
	}
}

// writeFirstCopies lists the first ten copies, one a line with queue ID,
// kind, sender, recipient and what more says of it, and how many more there
// are.
func writeFirstCopies(w io.Writer, copies []Copy, more func(Copy) string) {
	for i, c := range copies {
		if i == 10 {
			fmt.Fprintf(w, "  ... %d more\n", len(copies)-10)
			break
		}
		fmt.Fprintf(w, "  %s  %s from <%s> to <%s>%s\n", c.QueueID, c.Kind, c.From, c.To, more(c))
	}
}

// WriteHeld lists what loopbreaker held or quarantined and how to release it.
func (r *Result) WriteHeld(w io.Writer) {
	var held, quarantined []Copy
	for _, c := range r.Ledger.Copies {
		switch c.Fate {
		case Held:
			held = append(held, c)
		case Quarantined:
			quarantined = append(quarantined, c)
		}
	}
	if len(held) > 0 {
		fmt.Fprintf(w, "\n%s held in the hub's hold queue (postqueue -p marks them with '!'):\n", plural(len(held), "copy", "copies"))
		writeFirstCopies(w, held, func(c Copy) string { return "" })
		fmt.Fprintf(w, "release one (after fixing the loop): postsuper -H %s    all of them: postsuper -H ALL\n", held[0].QueueID)
		fmt.Fprintf(w, "or delete them: postsuper -d %s hold    (this run's hub: add -c %s)\n", held[0].QueueID, r.HubConfigDir)
	}
	var deferred []Copy
	for _, c := range r.Ledger.Copies {
		if c.Fate == Deferred && (c.Inst == "hub" || slices.Contains(r.Hubs, c.Inst)) {
			deferred = append(deferred, c)
		}
	}
	if len(deferred) > 0 {
		fmt.Fprintf(w, "\n%s deferred on the hub (postqueue -p lists them, with the reason):\n", plural(len(deferred), "copy", "copies"))
		writeFirstCopies(w, deferred, func(c Copy) string { return ": " + shortReason(c.Reason) })
		fmt.Fprintln(w, "Postfix retries them every queue run; once the block ends (or is released) they go on. postsuper -d QUEUEID deletes one.")
	}
	if len(quarantined) > 0 {
		fmt.Fprintf(w, "\n%s redirected to the quarantine mailbox %s, each with X-Loopbreaker (rule, key, count) and X-Loopbreaker-Original-Recipients.\n", plural(len(quarantined), "message", "messages"), Quarantine)
		fmt.Fprintln(w, "to release one, fix the rule first, then send it on to its original recipients, e.g. with")
		fmt.Fprintln(w, "  sendmail -f SENDER ORIGINAL-RECIPIENTS < saved-message.eml")
	}
}

// Ordinal writes n as "1st", "2nd", "11th", "23rd".
func Ordinal(n int) string {
	suffix := "th"
	switch {
	case n%100 >= 11 && n%100 <= 13:
	case n%10 == 1:
		suffix = "st"
	case n%10 == 2:
		suffix = "nd"
	case n%10 == 3:
		suffix = "rd"
	}
	return fmt.Sprintf("%d%s", n, suffix)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func shortReason(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.Index(s, "; blocked until"); i > 0 {
		s = s[:i]
	}
	if len(s) > 140 {
		s = s[:140] + "..."
	}
	return s
}

func blank(n int) string {
	if n == 0 {
		return "."
	}
	return fmt.Sprint(n)
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

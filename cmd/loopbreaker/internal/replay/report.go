package replay

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/loopbreaker/loopbreaker/loopdetect/classify"
)

// Dur is a duration written as Go writes it ("15m0s") in JSON.
type Dur time.Duration

// MarshalText writes the duration in Go syntax.
func (d Dur) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads it back.
func (d *Dur) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Dur(v)
	return err
}

func (d Dur) String() string { return short(time.Duration(d)) }

// short writes a duration without its zero tails: "15m", "1h", "1h30m".
func short(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// Report is what a replay found. Its JSON form is what -json prints.
type Report struct {
	// Policy is where the policy came from; Changes the -set values
	// applied to it (single values).
	Policy  string        `json:"policy"`
	Changes []string      `json:"changes,omitempty"`
	Notes   []string      `json:"policy_notes,omitempty"`
	Mailbox string        `json:"mailbox"`
	Sources []SourceStats `json:"sources"`
	// Messages is how many messages were replayed; Bad those that could
	// not be (not counted in Messages); Undated those with no time of
	// their own (replayed at the time of the one read before).
	Messages int          `json:"messages"`
	Bad      []BadMessage `json:"bad"`
	Undated  int          `json:"undated"`
	First    time.Time    `json:"first"`
	Last     time.Time    `json:"last"`
	// Kinds counts the messages by the classifier's kind.
	Kinds map[string]int `json:"kinds"`
	Rules []*RuleReport  `json:"rules"`
	// OrdinaryTouched are the ordinary messages a rule acted on (monitor
	// aside). For the built-in policy on ordinary mail it is empty.
	OrdinaryTouched []Touched       `json:"ordinary_touched"`
	WhatIf          []VariantReport `json:"what_if,omitempty"`
	Elapsed         Dur             `json:"elapsed"`
	PerSecond       float64         `json:"messages_per_second"`

	timeline *timeline
}

// BadMessage is a message that could not be replayed, and why.
type BadMessage struct {
	Location string `json:"location"`
	Reason   string `json:"reason"`
}

// MsgRef names one message.
type MsgRef struct {
	Time     time.Time `json:"time"`
	Subject  string    `json:"subject"`
	Location string    `json:"location"`
	Kind     string    `json:"kind"`
}

// RuleReport is one rule's part of the replay.
type RuleReport struct {
	Name      string   `json:"name"`
	Kinds     []string `json:"kinds"`
	Key       string   `json:"key"`
	Direction string   `json:"direction"`
	Limit     int      `json:"limit"`
	Window    Dur      `json:"window"`
	BlockFor  Dur      `json:"block_for"`
	Action    string   `json:"action"`
	// Hits is how many counts the rule took (a message counts once per
	// key), Passed how many of them were let through, Acted how many
	// messages the rule acted on.
	Hits   int            `json:"hits"`
	Passed int            `json:"passed"`
	Acted  int            `json:"acted"`
	Blocks []*BlockReport `json:"blocks"`
	// Top are the keys with the highest peak count in any window.
	Top []KeyPeak `json:"top"`
}

// BlockReport is one block: when it would have started (the message that
// crossed the limit), until when, what it fell on.
type BlockReport struct {
	Rule  string    `json:"rule"`
	Key   string    `json:"key"`
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
	// Lasted is Until - Since: the block's length (for a rule of limit 0
	// without block_for, from the first to the last message it acted on).
	Lasted Dur    `json:"lasted"`
	Start  MsgRef `json:"start"`
	Action string `json:"action"`
	// Count and Limit are the count in the window that crossed the limit.
	Count int `json:"count"`
	Limit int `json:"limit"`
	// PassedBefore is how many messages of the key the rule let through
	// before the block started (over the whole replay).
	PassedBefore int `json:"passed_before"`
	// Messages is how many messages fell under the block, by kind; Acted
	// how many of them this rule acted on (an earlier rule may act on one).
	Messages int            `json:"messages"`
	Acted    int            `json:"acted"`
	ByKind   map[string]int `json:"by_kind"`
	Last     time.Time      `json:"last_message"`
}

// Touched is an ordinary message a rule acted on, with the evidence.
type Touched struct {
	Message  MsgRef `json:"message"`
	Rule     string `json:"rule"`
	Key      string `json:"key"`
	Action   string `json:"action"`
	Count    int    `json:"count"`
	Limit    int    `json:"limit"`
	Evidence string `json:"evidence"`
}

// KeyPeak is one key's busiest window under a rule.
type KeyPeak struct {
	Rule string `json:"rule"`
	Key  string `json:"key"`
	// Messages is every count of the key over the replay; Peak the most
	// in one window of the rule's length (ending at PeakAt).
	Messages int       `json:"messages"`
	Peak     int       `json:"peak"`
	PeakAt   time.Time `json:"peak_at"`
	Limit    int       `json:"limit"`
	Window   Dur       `json:"window"`
}

// VariantReport is one -set combination of a what-if sweep.
type VariantReport struct {
	Label           string          `json:"label"`
	Rules           []VariantRule   `json:"rules"`
	OrdinaryTouched int             `json:"ordinary_touched"`
	Blocks          []*BlockReport  `json:"blocks"`
	Changed         map[string]bool `json:"-"`
}

// VariantRule is a rule's totals in a variant.
type VariantRule struct {
	Name   string `json:"name"`
	Limit  int    `json:"limit"`
	Window Dur    `json:"window"`
	Action string `json:"action"`
	Hits   int    `json:"hits"`
	Passed int    `json:"passed"`
	Acted  int    `json:"acted"`
	Blocks int    `json:"blocks"`
}

// report fills rep from the main run.
func (r *run) report(rep *Report, topN int) {
	for i := range r.pol.Rules {
		rr := r.rules[r.pol.Rules[i].Name]
		rr.Top = topKeys(r.times, rr, topN)
		rep.Rules = append(rep.Rules, rr)
	}
	rep.OrdinaryTouched = r.touched
	if rep.OrdinaryTouched == nil {
		rep.OrdinaryTouched = []Touched{}
	}
	if rep.Bad == nil {
		rep.Bad = []BadMessage{}
	}
}

func (r *run) variantReport() VariantReport {
	v := VariantReport{Label: r.label, OrdinaryTouched: len(r.touched), Blocks: r.blocks, Changed: map[string]bool{}}
	if v.Blocks == nil {
		v.Blocks = []*BlockReport{}
	}
	for _, c := range r.changes {
		v.Changed[c.rule] = true
	}
	for i := range r.pol.Rules {
		rl := &r.pol.Rules[i]
		rr := r.rules[rl.Name]
		v.Rules = append(v.Rules, VariantRule{
			Name: rl.Name, Limit: rl.Limit, Window: Dur(rl.Window.D()), Action: string(rl.Action),
			Hits: rr.Hits, Passed: rr.Passed, Acted: rr.Acted, Blocks: len(rr.Blocks),
		})
	}
	return v
}

// topKeys computes, for each key the rule counted, the most hits in any
// window of the rule's length ((t-window, t], as the store counts), from
// the hit times themselves, and returns the n highest.
func topKeys(times map[string][]int64, rr *RuleReport, n int) []KeyPeak {
	prefix := rr.Name + "\x00"
	w := time.Duration(rr.Window).Milliseconds()
	var out []KeyPeak
	for rk, ts := range times {
		key, ok := strings.CutPrefix(rk, prefix)
		if !ok {
			continue
		}
		peak, at := peakCount(ts, w)
		out = append(out, KeyPeak{Rule: rr.Name, Key: key, Messages: len(ts), Peak: peak, PeakAt: time.UnixMilli(at).UTC(), Limit: rr.Limit, Window: rr.Window})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Peak != b.Peak {
			return a.Peak > b.Peak
		}
		if a.Messages != b.Messages {
			return a.Messages > b.Messages
		}
		return a.Key < b.Key
	})
	if len(out) > n {
		out = out[:n]
	}
	if out == nil {
		out = []KeyPeak{}
	}
	return out
}

// peakCount is the sliding-window maximum of ascending times: the most
// times within any (t-w, t], and the t it ends at. A window of 0 counts
// each time alone.
func peakCount(ts []int64, w int64) (int, int64) {
	if len(ts) == 0 {
		return 0, 0
	}
	best, at := 0, ts[0]
	j := 0
	for i, t := range ts {
		for j < i && ts[j] <= t-w {
			j++
		}
		if c := i - j + 1; c > best {
			best, at = c, t
		}
	}
	return best, at
}

// WriteJSON prints the report as one indented JSON object.
func (rep *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

const timeFmt = "2006-01-02 15:04:05 -0700"

// WriteText prints the report as text tables.
func (rep *Report) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	p := func(format string, args ...any) { fmt.Fprintf(ew, format, args...) }
	src := rep.Policy
	if len(rep.Changes) > 0 {
		src += " with " + strings.Join(rep.Changes, " ")
	}
	p("loopbreaker replay: %d messages (%s mailbox), policy %s\n", rep.Messages, rep.Mailbox, src)
	for _, s := range rep.Sources {
		p("  %s (%s): %d messages, %d bad\n", s.Source, s.Format, s.Messages, s.Bad)
	}
	if rep.Messages > 0 {
		p("  from %s to %s\n", rep.First.Format(timeFmt), rep.Last.Format(timeFmt))
	}
	kinds := make([]string, 0, len(rep.Kinds))
	for _, k := range classify.Kinds {
		if n := rep.Kinds[string(k)]; n > 0 {
			kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
		}
	}
	if len(kinds) > 0 {
		p("  kinds: %s\n", strings.Join(kinds, ", "))
	}
	if rep.Undated > 0 {
		p("  %d messages had no date of their own and were replayed at the time of the message read before\n", rep.Undated)
	}
	for _, n := range rep.Notes {
		p("  note: %s\n", n)
	}
	p("  %.0f messages/s\n", rep.PerSecond)

	p("\nBlocks\n")
	any := false
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tKEY\tSTARTED\tLASTED\tMESSAGES\tBY KIND\tPASSED BEFORE\tSTARTED BY")
	for _, rr := range rep.Rules {
		for _, b := range rr.Blocks {
			any = true
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%d\t%s %q\n", b.Rule, b.Key, b.Since.Format(timeFmt), b.Lasted,
				b.Messages, byKind(b.ByKind), b.PassedBefore, b.Start.Location, b.Start.Subject)
		}
	}
	if any {
		tw.Flush()
	} else {
		p("  none: no rule's limit was crossed\n")
	}

	p("\nOrdinary messages touched: %d\n", len(rep.OrdinaryTouched))
	for _, t := range rep.OrdinaryTouched {
		p("  %s %s %q: %s by %s (key %s, %d over limit %d); %s\n", t.Message.Time.Format(timeFmt), t.Message.Location,
			t.Message.Subject, t.Action, t.Rule, t.Key, t.Count, t.Limit, t.Evidence)
	}

	p("\nBusiest keys (peak count in any window)\n")
	tw = tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tKEY\tPEAK\tWINDOW\tLIMIT\tPEAK AT\tMESSAGES")
	any = false
	for _, rr := range rep.Rules {
		for _, k := range rr.Top {
			any = true
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\t%d\n", rr.Name, k.Key, k.Peak, k.Window, k.Limit, k.PeakAt.Format(timeFmt), k.Messages)
		}
	}
	if any {
		tw.Flush()
	} else {
		p("  none: no rule counted any message\n")
	}
	for _, rr := range rep.Rules {
		if len(rr.Top) > 0 {
			p("  %s\n", rr.Sentence())
		}
	}

	if len(rep.WhatIf) > 0 {
		p("\nWhat if\n")
		tw = tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SETTINGS\tRULE\tBLOCKS\tPASSED\tACTED\tFIRST STOP\tORDINARY TOUCHED")
		for _, v := range rep.WhatIf {
			for _, vr := range v.Rules {
				if !v.Changed[vr.Name] {
					continue
				}
				first := "never"
				for _, b := range v.Blocks {
					if b.Rule == vr.Name {
						first = fmt.Sprintf("%s (%s after %d passed) %s", b.Since.Format(timeFmt), b.Key, b.PassedBefore, b.Start.Location)
						break
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%d\n", v.Label, vr.Name, vr.Blocks, vr.Passed, vr.Acted, first, v.OrdinaryTouched)
			}
		}
		tw.Flush()
	}
	if len(rep.Bad) > 0 {
		p("\nBad messages: %d (not replayed)\n", len(rep.Bad))
		for i, b := range rep.Bad {
			if i == 20 {
				p("  ... %d more (-json lists them all)\n", len(rep.Bad)-i)
				break
			}
			p("  %s: %s\n", b.Location, b.Reason)
		}
	}
	return ew.err
}

// Sentence says how close the rule's busiest key came to the limit.
func (rr *RuleReport) Sentence() string {
	if len(rr.Top) == 0 {
		return ""
	}
	k := rr.Top[0]
	what := strings.Join(rr.Kinds, "/")
	s := fmt.Sprintf("%s: the busiest %s, %s, reached %d %s in %s; the limit is %d", rr.Name, rr.Key, k.Key, k.Peak, what, k.Window, k.Limit)
	if k.Peak > k.Limit {
		s += " (crossed)"
	}
	return s
}

func byKind(m map[string]int) string {
	var parts []string
	for _, k := range classify.Kinds {
		if n := m[string(k)]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, n))
		}
	}
	return strings.Join(parts, ", ")
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(b)
	e.err = err
	return n, err
}

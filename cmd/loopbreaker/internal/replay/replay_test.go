package replay

import (
	"bytes"
	"context"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/loopdetect/policy"
)

// corpPolicy is the built-in policy with -local-domains corp.example.
func corpPolicy() *policy.Policy {
	p := policy.Default()
	p.Apply(policy.Overrides{LocalDomains: []string{"corp.example"}})
	return p
}

func replayOrFail(t testing.TB, cfg Config, sources ...string) *Report {
	t.Helper()
	if cfg.Policy == nil {
		cfg.Policy = corpPolicy()
	}
	if cfg.TempDir == "" {
		cfg.TempDir = t.TempDir()
	}
	rep, err := Run(context.Background(), cfg, sources)
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	return rep
}

func ruleReport(t testing.TB, rep *Report, name string) *RuleReport {
	t.Helper()
	for _, rr := range rep.Rules {
		if rr.Name == name {
			return rr
		}
	}
	t.Fatalf("no rule %q in the report", name)
	return nil
}

// checkStorm asserts what the built-in policy does with stormMailbox(20s):
// one forward-storm block on alice, started by the 26th forward, on the
// 15 forwards after the 25 that passed, and no ordinary message touched.
func checkStorm(t *testing.T, rep *Report) {
	t.Helper()
	if rep.Messages != 45 || len(rep.Bad) != 0 {
		t.Fatalf("messages %d, bad %v; want 45 and none", rep.Messages, rep.Bad)
	}
	if rep.Kinds["forwarded-ndr"] != 40 || rep.Kinds["ordinary"] != 5 {
		t.Fatalf("kinds %v; want 40 forwarded-ndr and 5 ordinary", rep.Kinds)
	}
	fs := ruleReport(t, rep, "forward-storm")
	if len(fs.Blocks) != 1 {
		t.Fatalf("forward-storm blocks: %+v; want 1", fs.Blocks)
	}
	b := fs.Blocks[0]
	if b.Key != alice || b.Start.Subject != "FW: Undeliverable: Quarterly figures 26" || b.PassedBefore != 25 ||
		b.Messages != 15 || b.ByKind["forwarded-ndr"] != 15 || b.Acted != 15 {
		t.Errorf("block %+v; want alice's, started by forward 26 after 25 passed, on 15 forwarded NDRs", b)
	}
	if want := stormStart.Add(25 * 20 * time.Second); !b.Since.Equal(want) || time.Duration(b.Lasted) != time.Hour {
		t.Errorf("block since %s lasting %s; want %s for 1h", b.Since, b.Lasted, want)
	}
	if b.Start.Location == "" {
		t.Error("block start has no location")
	}
	if len(rep.OrdinaryTouched) != 0 {
		t.Errorf("ordinary messages touched: %+v", rep.OrdinaryTouched)
	}
	if fs.Passed != 25 || fs.Acted != 15 {
		t.Errorf("forward-storm passed %d acted %d; want 25 and 15", fs.Passed, fs.Acted)
	}
}

// TestReplayStormFormats replays the same storm from every kind of source.
func TestReplayStormFormats(t *testing.T) {
	msgs := stormMailbox(20*time.Second, true)
	cases := []struct {
		name  string
		write func(t *testing.T, dir string) (source string, stdin []byte)
	}{
		{"mboxrd", func(t *testing.T, dir string) (string, []byte) {
			p := filepath.Join(dir, "Inbox")
			writeMbox(t, p, msgs, true)
			return p, nil
		}},
		{"mboxo", func(t *testing.T, dir string) (string, []byte) {
			p := filepath.Join(dir, "inbox.mbox")
			writeMbox(t, p, msgs, false)
			return p, nil
		}},
		{"maildir", func(t *testing.T, dir string) (string, []byte) {
			p := filepath.Join(dir, "Maildir")
			writeMaildir(t, p, msgs)
			return p, nil
		}},
		{"eml-tree", func(t *testing.T, dir string) (string, []byte) {
			p := filepath.Join(dir, "export")
			writeEmlTree(t, p, msgs)
			return p, nil
		}},
		{"stdin", func(t *testing.T, dir string) (string, []byte) {
			p := filepath.Join(dir, "x.mbox")
			writeMbox(t, p, msgs, true)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			return "-", b
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src, stdin := c.write(t, t.TempDir())
			rep := replayOrFail(t, Config{Stdin: bytes.NewReader(stdin)}, src)
			checkStorm(t, rep)
		})
	}
}

// TestReplayOutbound replays alice's Sent folder: no Return-Path or
// Delivered-To; From: is the sender, To: the recipients.
func TestReplayOutbound(t *testing.T) {
	p := filepath.Join(t.TempDir(), "Sent")
	writeMbox(t, p, stormMailbox(20*time.Second, false), true)
	checkStorm(t, replayOrFail(t, Config{Mailbox: Outbound}, p))
}

// TestReplayTimeOrder: messages stored out of time order are replayed in
// time order, and messages of the same second keep the order read.
func TestReplayTimeOrder(t *testing.T) {
	msgs := stormMailbox(20*time.Second, true)
	rev := make([]testMsg, len(msgs))
	for i, m := range msgs {
		rev[len(msgs)-1-i] = m
	}
	p := filepath.Join(t.TempDir(), "reversed.mbox")
	writeMbox(t, p, rev, true)
	checkStorm(t, replayOrFail(t, Config{}, p))
}

// TestReplayPeakUnderLimit: one forward a minute never puts more than 15
// in a 15-minute window, so the built-in limit of 25 is never crossed; the
// report says how close the busiest sender came.
func TestReplayPeakUnderLimit(t *testing.T) {
	p := filepath.Join(t.TempDir(), "slow.mbox")
	writeMbox(t, p, stormMailbox(time.Minute, true), true)
	rep := replayOrFail(t, Config{}, p)
	fs := ruleReport(t, rep, "forward-storm")
	if len(fs.Blocks) != 0 {
		t.Fatalf("blocks %+v; want none", fs.Blocks)
	}
	if len(fs.Top) == 0 || fs.Top[0].Key != alice || fs.Top[0].Peak != 15 || fs.Top[0].Messages != 40 {
		t.Fatalf("top %+v; want alice with a peak of 15 of 40", fs.Top)
	}
	want := "forward-storm: the busiest sender, alice@corp.example, reached 15 forwarded-ndr in 15m; the limit is 25"
	if got := fs.Sentence(); got != want {
		t.Errorf("sentence %q\nwant     %q", got, want)
	}
	var out bytes.Buffer
	if err := rep.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), want) || !strings.Contains(out.String(), "none: no rule's limit was crossed") {
		t.Errorf("text report:\n%s", out.String())
	}
}

// TestReplayWhatIf sweeps the forward-storm limit in one pass.
func TestReplayWhatIf(t *testing.T) {
	p := filepath.Join(t.TempDir(), "storm.mbox")
	writeMbox(t, p, stormMailbox(20*time.Second, true), true)
	set, err := ParseSet("forward-storm.limit=10,25,50")
	if err != nil {
		t.Fatal(err)
	}
	rep := replayOrFail(t, Config{Sets: []Set{set}}, p)
	checkStorm(t, rep) // the main run keeps the policy's own limit
	want := []struct {
		label   string
		start   string // subject of the message that started the block; "" for none
		passed  int
		blocks  int
		touched int
	}{
		{"forward-storm.limit=10", "FW: Undeliverable: Quarterly figures 11", 10, 1, 0},
		{"forward-storm.limit=25", "FW: Undeliverable: Quarterly figures 26", 25, 1, 0},
		{"forward-storm.limit=50", "", 40, 0, 0},
	}
	if len(rep.WhatIf) != len(want) {
		t.Fatalf("what-if: %d variants; want %d", len(rep.WhatIf), len(want))
	}
	for i, w := range want {
		v := rep.WhatIf[i]
		var vr VariantRule
		for _, r := range v.Rules {
			if r.Name == "forward-storm" {
				vr = r
			}
		}
		start := ""
		for _, b := range v.Blocks {
			if b.Rule == "forward-storm" {
				start = b.Start.Subject
				break
			}
		}
		if v.Label != w.label || start != w.start || vr.Passed != w.passed || vr.Blocks != w.blocks || v.OrdinaryTouched != w.touched {
			t.Errorf("variant %d: %s start %q passed %d blocks %d touched %d; want %+v", i, v.Label, start, vr.Passed, vr.Blocks, v.OrdinaryTouched, w)
		}
	}
	var out bytes.Buffer
	rep.WriteText(&out)
	if !strings.Contains(out.String(), "What if") || !strings.Contains(out.String(), "forward-storm.limit=50") {
		t.Errorf("text report has no what-if table:\n%s", out.String())
	}
}

// TestReplaySetCombinations: several -set flags multiply; single values
// change the main run.
func TestReplaySetCombinations(t *testing.T) {
	p := filepath.Join(t.TempDir(), "storm.mbox")
	writeMbox(t, p, stormMailbox(20*time.Second, true), true)
	var sets []Set
	for _, s := range []string{"forward-storm.limit=10,20", "forward-storm.window=2m,1h", "forward-storm.action=tag"} {
		set, err := ParseSet(s)
		if err != nil {
			t.Fatal(err)
		}
		sets = append(sets, set)
	}
	rep := replayOrFail(t, Config{Sets: sets}, p)
	if len(rep.WhatIf) != 4 || len(rep.Changes) != 1 {
		t.Fatalf("%d variants, changes %v; want 4 and the action", len(rep.WhatIf), rep.Changes)
	}
	// A 2-minute window holds 6 forwards 20 s apart: limit 10 is never reached.
	for _, v := range rep.WhatIf {
		n := 0
		for _, b := range v.Blocks {
			if b.Rule == "forward-storm" {
				n++
				if b.Action != "tag" {
					t.Errorf("%s: action %s; want tag", v.Label, b.Action)
				}
			}
		}
		wantBlocks := 1
		if strings.Contains(v.Label, "window=2m") {
			wantBlocks = 0
		}
		if n != wantBlocks {
			t.Errorf("%s: %d blocks; want %d", v.Label, n, wantBlocks)
		}
	}
}

// TestReplayBadMessages: garbage before the first From line, a garbage
// entry and a message cut short in its header are counted as bad; the rest
// is replayed.
func TestReplayBadMessages(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "damaged.mbox")
	writeMbox(t, p, stormMailbox(20*time.Second, true), true)
	good, _ := os.ReadFile(p)
	var b bytes.Buffer
	b.WriteString("\x00\x01garbage that is no mbox line\n")
	b.Write(good)
	b.WriteString("From MAILER-DAEMON Tue Mar  3 12:00:00 2026\n\x89PNG\x00\x00 binary junk\n\n")
	b.WriteString("From alice@corp.example Tue Mar  3 12:01:00 2026\nReturn-Path: <alice@corp.example>\nSubject: FW: Undeliv")
	os.WriteFile(p, b.Bytes(), 0o644)
	rep := replayOrFail(t, Config{}, p)
	if len(rep.Bad) != 3 {
		t.Fatalf("bad %+v; want 3", rep.Bad)
	}
	reasons := ""
	for _, b := range rep.Bad {
		reasons += b.Location + ": " + b.Reason + "\n"
	}
	for _, want := range []string{"before the first mbox From line", "no header field", "truncated in its header"} {
		if !strings.Contains(reasons, want) {
			t.Errorf("no bad message for %q in\n%s", want, reasons)
		}
	}
	checkStorm(t, &Report{Messages: rep.Messages, Kinds: rep.Kinds, Rules: rep.Rules, OrdinaryTouched: rep.OrdinaryTouched})
	if rep.Sources[0].Bad != 3 || rep.Sources[0].Messages != 48 {
		t.Errorf("source stats %+v", rep.Sources[0])
	}
}

// TestReplayMboxUnescapes: go-mbox gives the classifier the message as it
// was before the mbox escaped its "From " lines.
func TestReplayMboxUnescapes(t *testing.T) {
	for _, rd := range []bool{true, false} {
		p := filepath.Join(t.TempDir(), "one.mbox")
		m := ordinaryMsg(1, stormStart, friend, true)
		writeMbox(t, p, []testMsg{m}, rd)
		sc := &scanner{budget: 1 << 20}
		if _, err := sc.scanSource(p); err != nil {
			t.Fatal(err)
		}
		items := sc.finish()
		if len(items) != 1 || items[0].Bad != "" {
			t.Fatalf("items %+v", items)
		}
		msg, err := readItem(items[0], 1<<20, Inbound)
		if err != nil {
			t.Fatal(err)
		}
		body := strings.ReplaceAll(string(msg.Body), "\r\n", "\n")
		if !strings.Contains(body, "\nFrom my side friday") {
			t.Errorf("rd=%v: body not unescaped:\n%s", rd, body)
		}
		if msg.Envelope.Sender != alice || len(msg.Envelope.Recipients) != 1 || msg.Envelope.Recipients[0] != friend {
			t.Errorf("envelope %+v", msg.Envelope)
		}
	}
}

func TestMessageTime(t *testing.T) {
	const d1, d2, d3 = "Tue, 3 Mar 2026 10:00:05 +0000", "Tue, 3 Mar 2026 09:59:00 +0000", "Tue, 3 Mar 2026 09:58:00 +0100"
	cases := []struct {
		name   string
		header string
		want   string
		from   string
	}{
		{"topmost received", "Received: from a by b; " + d1 + "\nReceived: from c by a; " + d2 + "\nDate: " + d3 + "\n", d1, "received"},
		{"folded received with comment", "Received: from a\n\tby b with ESMTP id X\n\tfor <x@y>; " + d1 + " (UTC)\nDate: " + d3 + "\n", d1, "received"},
		{"below delivered-to", "Received: by fetchmail (no date)\nDelivered-To: x@corp.example\nReceived: from c by a; " + d2 + "\nDate: " + d3 + "\n", d2, "delivered-to"},
		{"date", "Received: local\nDate: " + d3 + "\n", d3, "date"},
		{"none", "Subject: x\n", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs, _ := scanHeader([]byte(c.header+"\nbody\n"), false)
			got, from := messageTime(fs)
			var want time.Time
			if c.want != "" {
				want, _ = mail.ParseDate(c.want)
			}
			if !got.Equal(want) || from != c.from {
				t.Errorf("got %s from %q; want %s from %q", got, from, want, c.from)
			}
		})
	}
}

func TestPeakCount(t *testing.T) {
	cases := []struct {
		times  []int64
		window int64
		peak   int
		at     int64
	}{
		{nil, 10, 0, 0},
		{[]int64{5}, 10, 1, 5},
		{[]int64{0, 5, 10, 15}, 10, 2, 5}, // (t-10, t]: 0 falls out at 10
		{[]int64{0, 1, 2, 30, 31, 32, 33}, 10, 4, 33},
		{[]int64{0, 0, 0}, 0, 1, 0}, // a window of 0 counts each time alone
	}
	for _, c := range cases {
		if p, at := peakCount(c.times, c.window); p != c.peak || at != c.at {
			t.Errorf("peakCount(%v, %d) = %d at %d; want %d at %d", c.times, c.window, p, at, c.peak, c.at)
		}
	}
}

func TestParseSet(t *testing.T) {
	cases := []struct {
		in      string
		want    string
		wantErr string
	}{
		{"forward-storm.limit=10,25,50", "forward-storm.limit=10,25,50", ""},
		{"forward-storm.block-for=30m", "forward-storm.block_for=30m", ""},
		{"forward-storm.limit", "", "want RULE.FIELD"},
		{"forward-storm.kinds=any", "", "unknown field"},
		{"forward-storm.limit=", "", "no value"},
	}
	for _, c := range cases {
		s, err := ParseSet(c.in)
		switch {
		case c.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("ParseSet(%q) error %v; want %q", c.in, err, c.wantErr)
			}
		case err != nil || s.String() != c.want:
			t.Errorf("ParseSet(%q) = %v, %v; want %s", c.in, s, err, c.want)
		}
	}
	for _, bad := range []string{"nosuch.limit=3", "forward-storm.limit=x", "forward-storm.window=soon", "forward-storm.action=explode"} {
		s, _ := ParseSet(bad)
		if _, err := apply(policy.Default(), []change{{s.Rule, s.Field, s.Values[0]}}); err == nil {
			t.Errorf("apply(%s): no error", bad)
		}
	}
}

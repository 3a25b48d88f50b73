package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// replayStormMbox writes an mbox of n forwarded NDRs from alice to a
// mistyped outside address, spacing apart, as a recipient's inbox holds
// them (Return-Path, Delivered-To, a Received with the time).
func replayStormMbox(t *testing.T, n int, spacing time.Duration) string {
	t.Helper()
	start := time.Date(2026, 3, 3, 9, 0, 0, 0, time.UTC)
	var b strings.Builder
	for i := 1; i <= n; i++ {
		at := start.Add(time.Duration(i-1) * spacing)
		date := at.Format(time.RFC1123Z)
		fmt.Fprintf(&b, "From alice@corp.example %s\n", at.Format("Mon Jan _2 15:04:05 2006"))
		fmt.Fprintf(&b, "Return-Path: <alice@corp.example>\nDelivered-To: nobody@outside.example\n"+
			"Received: from mail.corp.example by mx.outside.example with ESMTP id %d; %s\n"+
			"From: alice@corp.example\nTo: nobody@outside.example\nSubject: FW: Mail delivery failed %d\nDate: %s\n"+
			"Message-ID: <fw-%d@corp.example>\n\n"+
			"-----Original Message-----\nFrom: Mail Delivery System <Mailer-Daemon@outside.example>\n"+
			"Sent: Monday, March 2, 2026 10:00 AM\nTo: alice@corp.example\nSubject: Mail delivery failed: returning message to sender\n\n"+
			"This message was created automatically by mail delivery software.\n\n"+
			"A message that you sent could not be delivered to one or more of its\nrecipients. This is a permanent error.\n\n"+
			"  nobody@outside.example\n    550 5.1.1 User unknown\n\n", i, date, i, date, i)
	}
	p := filepath.Join(t.TempDir(), "storm.mbox")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func runReplayTest(t *testing.T, _ string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := runReplay(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestReplayCommand runs `loopbreaker replay` on a storm: text, JSON, HTML
// and a what-if sweep.
func TestReplayCommand(t *testing.T) {
	mbox := replayStormMbox(t, 40, 20*time.Second)
	htmlPath := filepath.Join(t.TempDir(), "report.html")
	code, out, errOut := runReplayTest(t, "", "-local-domains", "corp.example", "-html", htmlPath, "-q", mbox)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"loopbreaker replay: 40 messages", "forward-storm", "alice@corp.example", "FW: Mail delivery failed 26", "Ordinary messages touched: 0"} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q:\n%s", want, out)
		}
	}
	if errOut != "" {
		t.Errorf("-q, yet stderr: %s", errOut)
	}
	page, err := os.ReadFile(htmlPath)
	if err != nil || !bytes.Contains(page, []byte(`data-block-rule="forward-storm"`)) {
		t.Errorf("HTML report: %v", err)
	}

	code, out, errOut = runReplayTest(t, "", "-local-domains", "corp.example", "-json", "-q", "-set", "forward-storm.limit=10,25,50", mbox)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rep struct {
		Messages int `json:"messages"`
		Rules    []struct {
			Name   string `json:"name"`
			Blocks []struct {
				Start struct{ Subject string } `json:"start"`
			} `json:"blocks"`
		} `json:"rules"`
		OrdinaryTouched []any `json:"ordinary_touched"`
		WhatIf          []struct {
			Label  string `json:"label"`
			Blocks []struct {
				Rule  string                   `json:"rule"`
				Start struct{ Subject string } `json:"start"`
			} `json:"blocks"`
		} `json:"what_if"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("JSON: %v\n%s", err, out)
	}
	if rep.Messages != 40 || rep.OrdinaryTouched == nil || len(rep.WhatIf) != 3 {
		t.Fatalf("JSON report: %+v", rep)
	}
	starts := []string{}
	for _, v := range rep.WhatIf {
		s := "never"
		for _, b := range v.Blocks {
			if b.Rule == "forward-storm" {
				s = b.Start.Subject
				break
			}
		}
		starts = append(starts, v.Label+": "+s)
	}
	want := "forward-storm.limit=10: FW: Mail delivery failed 11|forward-storm.limit=25: FW: Mail delivery failed 26|forward-storm.limit=50: never"
	if got := strings.Join(starts, "|"); got != want {
		t.Errorf("what-if starts:\n%s\nwant\n%s", got, want)
	}
}

// TestReplayCommandStdin reads an mbox on stdin.
func TestReplayCommandStdin(t *testing.T) {
	mbox := replayStormMbox(t, 30, 20*time.Second)
	f, err := os.Open(mbox)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	old := os.Stdin
	os.Stdin = f
	defer func() { os.Stdin = old }()
	code, out, errOut := runReplayTest(t, "", "-q", "-local-domains", "corp.example", "-")
	if code != 0 || !strings.Contains(out, "30 messages") || !strings.Contains(out, "(stdin)") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
}

// TestReplayCommandRefusesDaemonState: the daemon's state file is never
// counted into.
func TestReplayCommandRefusesDaemonState(t *testing.T) {
	mbox := replayStormMbox(t, 1, time.Second)
	code, _, errOut := runReplayTest(t, "", "-state", defaultSystemState, mbox)
	if code != 2 || !strings.Contains(errOut, "daemon's state file") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	t.Setenv(envState, filepath.Join(t.TempDir(), "daemon.db"))
	code, _, errOut = runReplayTest(t, "", "-state", os.Getenv(envState), mbox)
	if code != 2 || !strings.Contains(errOut, "daemon's state file") {
		t.Fatalf("$%s: exit %d: %s", envState, code, errOut)
	}
	own := filepath.Join(t.TempDir(), "replay.db")
	code, _, errOut = runReplayTest(t, "", "-q", "-state", own, mbox)
	if code != 0 {
		t.Fatalf("own state file: exit %d: %s", code, errOut)
	}
	if _, err := os.Stat(own); err != nil {
		t.Errorf("own state file not kept: %v", err)
	}
}

// TestReplayCommandUsage: usage errors exit 2, unreadable sources 1.
func TestReplayCommandUsage(t *testing.T) {
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{nil, 2, "missing SOURCE"},
		{[]string{"-mailbox", "sideways", "x"}, 2, "unknown mailbox"},
		{[]string{"-set", "forward-storm.colour=red", "x"}, 2, "unknown field"},
		{[]string{"-q", "-set", "nosuch.limit=3", os.DevNull}, 1, "no rule \"nosuch\""},
		{[]string{"-q", filepath.Join(os.TempDir(), "does-not-exist-replay")}, 1, "no such file"},
	}
	for _, c := range cases {
		code, _, errOut := runReplayTest(t, "", c.args...)
		if code != c.code || !strings.Contains(errOut, c.msg) {
			t.Errorf("replay %q: exit %d, %q; want %d and %q", c.args, code, errOut, c.code, c.msg)
		}
	}
}

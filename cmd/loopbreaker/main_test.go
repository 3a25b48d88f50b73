package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

func TestParseSocket(t *testing.T) {
	tests := []struct {
		spec, network, addr string
		bad                 bool
	}{
		{spec: "inet:7357@127.0.0.1", network: "tcp4", addr: "127.0.0.1:7357"},
		{spec: "inet:7357", network: "tcp4", addr: "127.0.0.1:7357"},
		{spec: "inet6:7357@[::1]", network: "tcp6", addr: "[::1]:7357"},
		{spec: "unix:/run/loopbreaker/milter.sock", network: "unix", addr: "/run/loopbreaker/milter.sock"},
		{spec: "local:/tmp/x.sock", network: "unix", addr: "/tmp/x.sock"},
		{spec: "inet:port@127.0.0.1", bad: true},
		{spec: "127.0.0.1:7357", bad: true},
		{spec: "smtp:25", bad: true},
		{spec: "unix:", bad: true},
	}
	for _, tt := range tests {
		network, addr, err := parseSocket(tt.spec)
		if tt.bad {
			if err == nil {
				t.Errorf("%q: no error", tt.spec)
			}
			continue
		}
		if err != nil || network != tt.network || addr != tt.addr {
			t.Errorf("%q: %s %s %v", tt.spec, network, addr, err)
		}
	}
}

func TestServeRefusesBadPolicyWithPosition(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "policy.toml")
	os.WriteFile(bad, []byte("local_domains = [\"corp.example\"]\n[[rule]]\nname = \"x\"\nwindow = \"soon\"\n"), 0o644)
	var out, errb bytes.Buffer
	rc := run(context.Background(), []string{"serve", "-listen", "unix:" + filepath.Join(dir, "s.sock"), "-state", filepath.Join(dir, "st.db"), "-policy", bad}, &out, &errb)
	if rc == 0 || !strings.Contains(errb.String(), bad+":4:") {
		t.Fatalf("rc %d, stderr %q", rc, errb.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "st.db")); err == nil {
		t.Fatal("state file created although the policy was refused")
	}
}

func TestServeReportsLockedStateQuickly(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "st.db")
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan int, 1)
	var errFirst testproc.Buffer
	go func() {
		first <- run(ctx, []string{"serve", "-listen", "unix:" + filepath.Join(dir, "a.sock"), "-state", state}, &bytes.Buffer{}, &errFirst)
	}()
	waitFor(t, filepath.Join(dir, "a.sock"), &errFirst)
	var errb bytes.Buffer
	rc := run(context.Background(), []string{"serve", "-listen", "unix:" + filepath.Join(dir, "b.sock"), "-state", state}, &bytes.Buffer{}, &errb)
	if rc == 0 || !strings.Contains(errb.String(), "locked by another process") {
		t.Fatalf("rc %d, stderr %q", rc, errb.String())
	}
	cancel()
	if rc := <-first; rc != 0 {
		t.Fatalf("first daemon exit %d: %s", rc, errFirst.String())
	}
}

func TestCheckPolicy(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	var b bytes.Buffer
	run(context.Background(), []string{"default-policy"}, &b, &bytes.Buffer{})
	os.WriteFile(good, b.Bytes(), 0o644)
	var out, errb bytes.Buffer
	if rc := run(context.Background(), []string{"check-policy", good}, &out, &errb); rc != 0 || !strings.Contains(out.String(), "ok, 7 rules") || errb.Len() != 0 {
		t.Fatalf("default policy: rc %d %q %q", rc, out.String(), errb.String())
	}
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[[rule]]\nname = \"a\"\nkinds = [\"bounce\"]\nkey = \"sender\"\nlimit = 5\nwindow = \"1h\"\naction = \"explode\"\nlimt = 3\n"), 0o644)
	errb.Reset()
	if rc := run(context.Background(), []string{"check-policy", bad}, &out, &errb); rc != 1 {
		t.Fatalf("bad policy rc %d", rc)
	}
	for _, want := range []string{bad + ":7:", `unknown action "explode"`} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr %q lacks %q", errb.String(), want)
		}
	}
}

// TestCheckPolicyWarnsOfRefusingLocalOutbound: a rule that rejects or
// tempfails outbound reports of local senders is a warning at its place on
// standard error, and the check still passes; senders that exclude local
// senders, an inbound direction or an absorbing action give none.
func TestCheckPolicyWarnsOfRefusingLocalOutbound(t *testing.T) {
	dir := t.TempDir()
	head := "local_domains = [\"corp.example\"]\n\n"
	rule := func(name, kinds, direction, action, senders string) string {
		s := fmt.Sprintf("[[rule]]\nname = %q\nkinds = %s\ndirection = %q\nkey = \"sender\"\nlimit = 5\nwindow = \"1h\"\naction = %q\n", name, kinds, direction, action)
		if senders != "" {
			s += "senders = " + senders + "\n"
		}
		return s + "\n"
	}
	for _, c := range []struct {
		name, rule string
		warn       bool
	}{
		{"reject any", rule("r", `["bounce", "forwarded-ndr"]`, "any", "reject", ""), true},
		{"tempfail outbound", rule("r", `["forwarded-ndr"]`, "outbound", "tempfail", ""), true},
		{"loop signs", rule("r", `["loop-sign"]`, "outbound", "reject", ""), true},
		{"null sender", rule("r", `["bounce"]`, "outbound", "reject", `["<>"]`), true},
		{"local glob", rule("r", `["bounce"]`, "outbound", "reject", `["*@corp.example"]`), true},
		{"glob domain", rule("r", `["bounce"]`, "outbound", "reject", `["*@*"]`), true},
		{"outside senders", rule("r", `["bounce"]`, "outbound", "reject", `["@partner.example", "bounces@lists.example"]`), false},
		{"inbound", rule("r", `["bounce"]`, "inbound", "reject", ""), false},
		{"redirect", rule("r", `["bounce"]`, "any", "redirect", ""), false},
		{"auto-replies", rule("r", `["auto-reply"]`, "any", "reject", ""), false},
	} {
		f := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".toml")
		os.WriteFile(f, []byte(head+c.rule), 0o644)
		var out, errb bytes.Buffer
		rc := run(context.Background(), []string{"check-policy", f}, &out, &errb)
		if rc != 0 || !strings.Contains(out.String(), "ok, 1 rules") {
			t.Errorf("%s: rc %d, stdout %q, stderr %q; want ok", c.name, rc, out.String(), errb.String())
		}
		got := errb.String()
		if !c.warn {
			if got != "" {
				t.Errorf("%s: stderr %q, want no warning", c.name, got)
			}
			continue
		}
		// The action line of the rule: line 3 + 7.
		if want := f + ":10:1: warning: rule \"r\" would "; !strings.HasPrefix(got, want) || strings.Count(got, "\n") != 1 {
			t.Errorf("%s: stderr %q, want one line starting %q", c.name, got, want)
		}
		if strings.Contains(out.String(), "would ") {
			t.Errorf("%s: the warning is on stdout too: %q", c.name, out.String())
		}
	}
}

func TestLoggerLeavesTimeToJournald(t *testing.T) {
	var b bytes.Buffer
	t.Setenv("JOURNAL_STREAM", "8:1234")
	log, err := newLogger(&b, "text", "info")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hello", "rule", "forward-storm")
	if got := b.String(); strings.Contains(got, "time=") || !strings.Contains(got, "rule=forward-storm") {
		t.Fatalf("under journald: %q", got)
	}
	os.Unsetenv("JOURNAL_STREAM")
	b.Reset()
	log, _ = newLogger(&b, "json", "info")
	log.Info("hello")
	if !strings.Contains(b.String(), `"time":`) {
		t.Fatalf("outside journald: %q", b.String())
	}
}

// TestStatePathIgnoresTheWorkingDirectory: the binary does not sniff a
// checkout; without -state, $LOOPBREAKER_STATE or state_file it takes the
// system path (make run passes -state ./var/loopbreaker.db).
func TestStatePathIgnoresTheWorkingDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module github.com/loopbreaker/loopbreaker\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	t.Setenv(envState, "")
	if got := statePathWithoutPolicy(""); got != defaultSystemState {
		t.Errorf("in a checkout: %q, want %q", got, defaultSystemState)
	}
	if got := statePathWithoutPolicy("x.db"); got != "x.db" {
		t.Errorf("with -state: %q", got)
	}
}

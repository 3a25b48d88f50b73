package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// TestJSONLogHasOnlyJSONLines runs serve with -log-format json, makes
// go-milter warn (a connection that never negotiates: its 1 s negotiation
// timeout) and stops the daemon: every line on stderr must be a JSON
// object, the library's warning among them, and durations must read "30s".
func TestJSONLogHasOnlyJSONLines(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the daemon for a few seconds")
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "milter.sock")
	daemon := startSelf(t, []string{"JOURNAL_STREAM="}, sock, "serve", "-log-format", "json", "-listen", "unix:"+sock, "-state", filepath.Join(dir, "state.db"))
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	// Nothing sent: go-milter gives up after its 1 s negotiation timeout.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	io.Copy(io.Discard, c)
	c.Close()
	stopSelf(t, daemon)

	var sawWarning, sawGrace bool
	sc := bufio.NewScanner(strings.NewReader(daemon.Log()))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Errorf("not a JSON line: %q", sc.Text())
			continue
		}
		if strings.Contains(rec["msg"].(string), "Error reading milter command") {
			sawWarning = rec["from"] == "go-milter" && rec["level"] == "WARN"
		}
		if g, ok := rec["grace"]; ok {
			sawGrace = true
			if g != "30s" {
				t.Errorf("grace = %#v, want \"30s\"", g)
			}
		}
	}
	if !sawWarning {
		t.Error("no go-milter warning as a JSON line with from=go-milter, level WARN")
	}
	if !sawGrace {
		t.Error("no shutdown line with grace")
	}
}

// TestStandardLogGoesThroughSlog: after routeLibraryLogs, the standard log
// package (net/http's server errors, say) writes JSON lines too.
func TestStandardLogGoesThroughSlog(t *testing.T) {
	defer func(l *slog.Logger, w io.Writer, f int) { slog.SetDefault(l); log.SetOutput(w); log.SetFlags(f) }(slog.Default(), log.Writer(), log.Flags())
	var b bytes.Buffer
	l, err := newLogger(&b, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	routeLibraryLogs(l)
	log.Printf("http: TLS handshake error from %s", "192.0.2.1:1234")
	l.Info("slept", "for", 1500*time.Millisecond)
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not a JSON line: %q", line)
		}
		if f, ok := rec["for"]; ok && f != "1.5s" {
			t.Errorf("duration %#v, want \"1.5s\"", f)
		}
	}
	if !strings.Contains(b.String(), "TLS handshake error") {
		t.Fatalf("standard log line lost: %q", b.String())
	}
}

// waitFor waits for a file (a socket) to appear, for at most 10 s.
func waitFor(t *testing.T, path string, log fmt.Stringer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := testproc.Poll(ctx, path+" to appear", func(context.Context) error {
		_, err := os.Stat(path)
		return err
	}); err != nil {
		t.Fatalf("%v; log:\n%s", err, log.String())
	}
}

// TestJSONLogFatalErrorIsJSON: a daemon that cannot start says why in the
// JSON log only, with exit status 1.
func TestJSONLogFatalErrorIsJSON(t *testing.T) {
	defer func(l *slog.Logger) { slog.SetDefault(l) }(slog.Default())
	dir := t.TempDir()
	bad := filepath.Join(dir, "policy.toml")
	os.WriteFile(bad, []byte("[[rule]]\nname = \"x\"\nwindow = \"soon\"\n"), 0o644)
	out, errOut, rc := runCLI("serve", "-log-format", "json", "-listen", "unix:"+filepath.Join(dir, "m.sock"), "-state", filepath.Join(dir, "s.db"), "-policy", bad)
	if rc != 1 || out != "" || !strings.Contains(errOut, bad+":3:") {
		t.Fatalf("exit %d, stdout %q, stderr %q", rc, out, errOut)
	}
	for _, line := range strings.Split(strings.TrimSpace(errOut), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("not a JSON line: %q", line)
		}
	}
}

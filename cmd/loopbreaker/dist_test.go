package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loopbreaker/loopbreaker/cmd/loopbreaker/internal/admin"
)

// TestSystemdUnit keeps the shipped unit in step with the daemon: its
// ExecStart parses with serve's flags, its sockets parse, and the hardening
// it promises is there.
func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile("dist/loopbreaker.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	var exec string
	for _, line := range strings.Split(unit, "\n") {
		if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
			exec = v
		}
	}
	args := strings.Fields(exec)
	if len(args) < 2 || args[0] != "/usr/local/sbin/loopbreaker" || args[1] != "serve" {
		t.Fatalf("ExecStart = %q", exec)
	}
	var f serveFlags
	fs := serveFlagSet(&f, io.Discard)
	if err := fs.Parse(args[2:]); err != nil || fs.NArg() != 0 {
		t.Fatalf("ExecStart flags: %v %q", err, fs.Args())
	}
	if _, _, err := parseSocket(f.listen); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"User=loopbreaker", "ProtectSystem=strict", "ReadWritePaths=/var/lib/loopbreaker /run/loopbreaker",
		"NoNewPrivileges=yes", "CapabilityBoundingSet=\n", "ExecReload=/bin/kill -HUP $MAINPID", "StateDirectory=loopbreaker"} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q", want)
		}
	}
	if !strings.HasPrefix(f.state, "/var/lib/loopbreaker/") || !strings.HasPrefix(f.adminSocket, "/run/loopbreaker/") {
		t.Errorf("state %q / admin %q outside the writable paths", f.state, f.adminSocket)
	}
	// The unit's paths are the ones the CLI looks at first without flags.
	if f.state != admin.Installed.SystemState || f.state != defaultSystemState ||
		f.adminSocket != admin.Installed.Candidates("", admin.SocketName)[0] ||
		f.pidFile != admin.Installed.Candidates("", admin.PidFileName)[0] {
		t.Errorf("unit: state %q admin %q pidfile %q; the CLI looks first at %q, %q, %q", f.state, f.adminSocket, f.pidFile,
			admin.Installed.SystemState, admin.Installed.Candidates("", admin.SocketName)[0], admin.Installed.Candidates("", admin.PidFileName)[0])
	}
}

// TestSystemdUnitVerifies runs systemd-analyze verify on the unit (with
// ExecStart pointed at an existing file): any unknown key or bad value is a
// failure.
func TestSystemdUnitVerifies(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	b, err := os.ReadFile("dist/loopbreaker.service")
	if err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	unit := filepath.Join(t.TempDir(), "loopbreaker.service")
	os.WriteFile(unit, []byte(strings.ReplaceAll(string(b), "/usr/local/sbin/loopbreaker", self)), 0o644)
	out, err := exec.Command(sa, "verify", unit).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

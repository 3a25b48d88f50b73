package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loopbreaker/loopbreaker/cmd/loopbreaker/internal/admin"
)

func TestServeModeFlagUsage(t *testing.T) {
	_, errOut, rc := runCLI("serve", "-mode", "watch")
	if rc != 2 || !strings.Contains(errOut, `bad -mode: unknown mode "watch" (want enforce or monitor)`) {
		t.Fatalf("serve -mode watch: exit %d, %q", rc, errOut)
	}
}

// TestServeModeAndStatus: status shows the mode; a reload switches it as
// the policy file says, and -mode overrides the file at start and across
// reloads (status says so).
func TestServeModeAndStatus(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the daemon")
	}
	for _, tt := range []struct {
		name              string
		flags             []string
		file, reloaded    string // the policy's mode at start and after the rewrite
		status, afterward string // the mode status shows
		note              string
	}{
		{name: "policy", file: "monitor", reloaded: "enforce", status: "monitor", afterward: "enforce"},
		{name: "flag", flags: []string{"-mode", "monitor"}, file: "enforce", reloaded: "enforce", status: "monitor", afterward: "monitor",
			note: "mode monitor is set on the command line (serve -mode); it overrides the policy file's mode enforce, also across reloads"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			pol := filepath.Join(dir, "policy.toml")
			write := func(mode string) {
				if err := os.WriteFile(pol, []byte("mode = \""+mode+"\"\nlocal_domains = [\"corp.example\"]\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			write(tt.file)
			st := filepath.Join(dir, "loopbreaker.db")
			args := append([]string{"serve", "-listen", "unix:" + filepath.Join(dir, "milter.sock"), "-state", st, "-policy", pol}, tt.flags...)
			daemon := startSelf(t, []string{admin.EnvAdmin + "=", envState + "="}, filepath.Join(dir, admin.SocketName), args...)
			env := []string{envState + "=" + st}
			status := func() admin.Status {
				t.Helper()
				out, errOut, rc := runSelf(t, env, "status", "-json")
				var s admin.Status
				if rc != 0 || json.Unmarshal([]byte(out), &s) != nil {
					t.Fatalf("status -json: exit %d %s%s", rc, out, errOut)
				}
				return s
			}
			if s := status(); s.Mode != tt.status {
				t.Fatalf("mode %q at start, want %q", s.Mode, tt.status)
			}
			out, _, _ := runSelf(t, env, "status")
			if !strings.Contains(out, "mode                "+tt.status) {
				t.Errorf("status does not show the mode %s:\n%s", tt.status, out)
			}
			if tt.status == "monitor" && !strings.Contains(out, "monitor: rules count and blocks start and end, but no message is acted on") {
				t.Errorf("status does not explain monitor mode:\n%s", out)
			}
			if tt.note != "" && !strings.Contains(out, tt.note) {
				t.Errorf("status lacks the note %q:\n%s", tt.note, out)
			}
			write(tt.reloaded)
			if out, errOut, rc := runSelf(t, env, "reload"); rc != 0 {
				t.Fatalf("reload: exit %d %s%s", rc, out, errOut)
			}
			waitLog(t, daemon, "policy reloaded")
			if s := status(); s.Mode != tt.afterward {
				t.Fatalf("mode %q after the reload, want %q", s.Mode, tt.afterward)
			}
			if switched := strings.Contains(daemon.Log(), "mode switched"); switched != (tt.status != tt.afterward) {
				t.Errorf("log says mode switched: %v; log:\n%s", switched, daemon.Log())
			}
		})
	}
}

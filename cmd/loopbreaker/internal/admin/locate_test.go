package admin

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestLayout: the daemon of the system state file uses the run directory
// when it may write there, every other daemon (and that one otherwise) the
// state file's directory; the CLI's candidates include, in order, each place
// the daemon it means may have chosen.
func TestLayout(t *testing.T) {
	root := t.TempDir()
	l := Layout{RunDir: filepath.Join(root, "run/loopbreaker"), SystemState: filepath.Join(root, "var/lib/loopbreaker/state.db")}
	sys := filepath.Dir(l.SystemState)
	other := filepath.Join(root, "elsewhere/state.db")

	// No run directory (a daemon outside systemd, say): beside the state file.
	if got := l.DaemonPath(l.SystemState, SocketName); got != filepath.Join(sys, SocketName) {
		t.Errorf("without the run directory: %s", got)
	}
	if err := os.MkdirAll(l.RunDir, 0o750); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{SocketName, PidFileName} {
		if got := l.DaemonPath(l.SystemState, name); got != filepath.Join(l.RunDir, name) {
			t.Errorf("system daemon's %s: %s", name, got)
		}
		if got := l.DaemonPath(other, name); got != filepath.Join(root, "elsewhere", name) {
			t.Errorf("other daemon's %s: %s", name, got)
		}
	}
	wantSys := []string{filepath.Join(l.RunDir, SocketName), filepath.Join(sys, SocketName)}
	if got := l.Candidates("", SocketName); !reflect.DeepEqual(got, wantSys) {
		t.Errorf("candidates without a state file: %q", got)
	}
	if got := l.Candidates(l.SystemState, SocketName); !reflect.DeepEqual(got, wantSys) {
		t.Errorf("candidates for the system state file: %q", got)
	}
	if got := l.Candidates(other, SocketName); !reflect.DeepEqual(got, []string{filepath.Join(root, "elsewhere", SocketName)}) {
		t.Errorf("candidates for another state file: %q", got)
	}
	if !l.FoundWithoutFlags(wantSys[0], SocketName) || !l.FoundWithoutFlags(wantSys[1], SocketName) || l.FoundWithoutFlags(filepath.Join(root, "elsewhere", SocketName), SocketName) {
		t.Error("FoundWithoutFlags")
	}
	if os.Geteuid() != 0 {
		// A run directory the daemon may not write to: beside the state file.
		os.Chmod(l.RunDir, 0o500)
		defer os.Chmod(l.RunDir, 0o750)
		if got := l.DaemonPath(l.SystemState, SocketName); got != filepath.Join(sys, SocketName) {
			t.Errorf("read-only run directory: %s", got)
		}
	}
}

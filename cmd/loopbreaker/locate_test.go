package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/loopbreaker/loopbreaker/cmd/loopbreaker/internal/admin"
)

// TestCLIFindsADaemonOfAnotherStateFile: a daemon run with -state elsewhere
// (make run: ./var/loopbreaker.db) is found by the admin commands and
// reload through $LOOPBREAKER_STATE or $LOOPBREAKER_ADMIN, its admin mail's
// release command carries -admin, and with neither the CLI names the places
// it tried.
func TestCLIFindsADaemonOfAnotherStateFile(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the daemon")
	}
	dir := t.TempDir()
	st := filepath.Join(dir, "loopbreaker.db")
	sock := filepath.Join(dir, admin.SocketName)
	startSelf(t, []string{admin.EnvAdmin + "=", envState + "="}, sock, "serve", "-listen", "unix:"+filepath.Join(dir, "milter.sock"), "-state", st)

	for _, env := range [][]string{{envState + "=" + st}, {admin.EnvAdmin + "=" + sock}} {
		if out, errOut, rc := runSelf(t, env, "status"); rc != 0 || !strings.Contains(out, st) {
			t.Errorf("%s status: exit %d %s%s", env, rc, out, errOut)
		}
	}
	if out, errOut, rc := runSelf(t, []string{envState + "=" + st}, "reload"); rc != 0 || !strings.Contains(out, "sent SIGHUP") {
		t.Errorf("reload: exit %d %s%s", rc, out, errOut)
	}
	if out, errOut, rc := runSelf(t, []string{envState + "=" + st}, "release", "x@y", "-rule", "forward-storm", "-admin", sock); rc != 0 || !strings.Contains(out, "no block matched") {
		t.Errorf("release with -admin after KEY: exit %d %s%s", rc, out, errOut)
	}
	_, errOut, rc := runSelf(t, []string{admin.EnvAdmin + "=", envState + "=" + filepath.Join(dir, "other", "s.db")}, "blocks")
	if rc != 1 || !strings.Contains(errOut, "loopbreaker blocks: ") || !strings.Contains(errOut, filepath.Join(dir, "other", admin.SocketName)+": no such socket") {
		t.Errorf("no daemon there: exit %d %q", rc, errOut)
	}
	if got, want := releaseArgs(sock), "-admin "+sock; got != want {
		t.Errorf("release args %q, want %q", got, want)
	}
	for _, p := range admin.Installed.Candidates("", admin.SocketName) {
		if got := releaseArgs(p); got != "" {
			t.Errorf("release args for %s: %q", p, got)
		}
	}
}

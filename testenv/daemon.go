package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// BuildDaemon builds cmd/loopbreaker with the race detector into dir and
// returns the binary's path.
func BuildDaemon(ctx context.Context, dir string) (string, error) {
	return Build(ctx, dir, "./cmd/loopbreaker", true)
}

// Build builds the main package pkg (e.g. "./cmd/loopbreaker") of this
// module into dir and returns the binary's path. Tests build with the race
// detector; benchmarks, the demo and the soak build the binary a postmaster
// runs.
func Build(ctx context.Context, dir, pkg string, race bool) (string, error) {
	root, err := testproc.ModuleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, filepath.Base(pkg))
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.CommandContext(ctx, "go", append(args, pkg)...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
	}
	return bin, nil
}

// Daemon is a loopbreaker process started by a test.
type Daemon struct {
	Bin  string
	Addr string // host:port of the milter socket
	Spec string // the -listen value, opendkim style: inet:PORT@127.0.0.1
	// PostfixSpec is the same socket as Postfix's smtpd_milters writes it:
	// inet:127.0.0.1:PORT.
	PostfixSpec string
	State       string // the state file
	proc        *testproc.Proc
}

// Log returns what the daemon has logged so far.
func (d *Daemon) Log() string { return d.proc.Log() }

// StartDaemon runs `bin serve` on a free loopback port with the state file
// in dir and the extra args, and waits until the milter port accepts.
func StartDaemon(ctx context.Context, bin, dir string, args ...string) (*Daemon, error) {
	port, err := testproc.FreePort(ctx, "127.0.0.1")
	if err != nil {
		return nil, err
	}
	d := &Daemon{
		Bin:         bin,
		Addr:        "127.0.0.1:" + strconv.Itoa(port),
		Spec:        "inet:" + strconv.Itoa(port) + "@127.0.0.1",
		PostfixSpec: "inet:127.0.0.1:" + strconv.Itoa(port),
		State:       filepath.Join(dir, "state.db"),
	}
	d.proc = &testproc.Proc{Name: "loopbreaker", Bin: bin,
		Args: append([]string{"serve", "-listen", d.Spec, "-state", d.State}, args...)}
	if err := d.start(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

// Restart starts the daemon again, after Stop or Kill, with the same
// socket, state file and flags.
func (d *Daemon) Restart(ctx context.Context) error { return d.start(ctx) }

func (d *Daemon) start(ctx context.Context) error {
	if err := d.proc.Start(); err != nil {
		return err
	}
	return d.proc.WaitReady(ctx, func(ctx context.Context) error { return testproc.Accepts(ctx, d.Addr) })
}

// Stop sends SIGTERM and waits for the daemon to exit.
func (d *Daemon) Stop() error { return d.proc.Stop(40 * time.Second) }

// Kill sends SIGKILL (a crash) and waits for the process to be gone.
func (d *Daemon) Kill() { d.proc.Kill() }

// MustStartDaemon builds (once per dir) and starts the daemon for a test and
// stops it at the end of the test.
func MustStartDaemon(tb testing.TB, bin string, args ...string) *Daemon {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d, err := StartDaemon(ctx, bin, tb.TempDir(), args...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := d.Stop(); err != nil {
			tb.Error(err)
		}
		if tb.Failed() {
			tb.Logf("loopbreaker log:\n%s", d.Log())
		}
	})
	return d
}

// Signal sends sig to the daemon.
func (d *Daemon) Signal(sig os.Signal) error { return d.proc.Signal(sig) }

// WaitLog waits until the daemon's log contains substr n times or more.
func (d *Daemon) WaitLog(ctx context.Context, substr string, n int) error {
	return d.proc.WaitLog(ctx, substr, n)
}

package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ModuleRoot finds the directory of this module's go.mod from the working
// directory of a test.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

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
	root, err := ModuleRoot()
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
	args        []string
	cmd         *exec.Cmd
	logMu       sync.Mutex
	log         bytes.Buffer
	done        chan struct{}
}

// Write collects the daemon's log.
func (d *Daemon) Write(p []byte) (int, error) {
	d.logMu.Lock()
	defer d.logMu.Unlock()
	return d.log.Write(p)
}

// Log returns what the daemon has logged so far.
func (d *Daemon) Log() string {
	d.logMu.Lock()
	defer d.logMu.Unlock()
	return d.log.String()
}

// StartDaemon runs `bin serve` on a free loopback port with the state file
// in dir and the extra args, and waits until the milter port accepts.
func StartDaemon(ctx context.Context, bin, dir string, args ...string) (*Daemon, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	d := &Daemon{
		Bin:         bin,
		Addr:        "127.0.0.1:" + strconv.Itoa(port),
		Spec:        "inet:" + strconv.Itoa(port) + "@127.0.0.1",
		PostfixSpec: "inet:127.0.0.1:" + strconv.Itoa(port),
		State:       filepath.Join(dir, "state.db"),
		done:        make(chan struct{}),
	}
	d.args = append([]string{"serve", "-listen", d.Spec, "-state", d.State}, args...)
	if err := d.start(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

// Restart starts the daemon again, after Stop or Kill, with the same
// socket, state file and flags.
func (d *Daemon) Restart(ctx context.Context) error {
	select {
	case <-d.done:
	default:
		return fmt.Errorf("loopbreaker is still running")
	}
	return d.start(ctx)
}

func (d *Daemon) start(ctx context.Context) error {
	d.done = make(chan struct{})
	d.cmd = exec.Command(d.Bin, d.args...)
	d.cmd.Stdout, d.cmd.Stderr = d, d
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		return fmt.Errorf("starting loopbreaker: %w", err)
	}
	done := d.done
	go func() { d.cmd.Wait(); close(done) }()
	for {
		c, err := net.DialTimeout("tcp4", d.Addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("loopbreaker exited at start: %s", d.Log())
		case <-ctx.Done():
			d.Kill()
			return fmt.Errorf("loopbreaker did not listen on %s: %w\n%s", d.Addr, ctx.Err(), d.Log())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop sends SIGTERM and waits for the daemon to exit.
func (d *Daemon) Stop() error {
	select {
	case <-d.done:
		return nil // already gone (killed by the test)
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		return nil
	case <-time.After(40 * time.Second):
		d.Kill()
		return fmt.Errorf("loopbreaker did not stop on SIGTERM")
	}
}

// Kill sends SIGKILL (a crash) and waits for the process to be gone.
func (d *Daemon) Kill() {
	_ = d.cmd.Process.Kill()
	<-d.done
}

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
func (d *Daemon) Signal(sig os.Signal) error { return d.cmd.Process.Signal(sig) }

// WaitLog waits until the daemon's log contains substr n times or more.
func (d *Daemon) WaitLog(ctx context.Context, substr string, n int) error {
	for {
		if strings.Count(d.Log(), substr) >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("daemon log lacks %d× %q: %w\n%s", n, substr, ctx.Err(), d.Log())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

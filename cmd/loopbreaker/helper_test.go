package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// envAsMain makes the test binary run main() instead of the tests, so that
// tests can run the daemon and the CLI as separate processes, the way an
// installed system does, without building the command first.
const envAsMain = "LOOPBREAKER_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(envAsMain) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// selfCommand is the loopbreaker command run from the test binary, with env
// added to the test's environment.
func selfCommand(t *testing.T, env []string, args ...string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, args...)
	cmd.Env = append(append(os.Environ(), envAsMain+"=1"), env...)
	return cmd
}

// runSelf runs the loopbreaker command to its end: stdout, stderr, exit code.
func runSelf(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := selfCommand(t, env, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatal(err)
		}
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

// startSelf runs the loopbreaker command (serve) from the test binary as
// a daemon, with env added to the test's environment and its output
// captured, waits until the file ready (its admin socket) appears, and
// kills it at the end of the test.
func startSelf(t *testing.T, env []string, ready string, args ...string) *testproc.Proc {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &testproc.Proc{Name: "loopbreaker " + args[0], Bin: self, Args: args, Env: append([]string{envAsMain + "=1"}, env...)}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	waitFor(t, ready, logOf(p.Log))
	return p
}

// stopSelf stops a daemon of startSelf with SIGTERM, as systemd does, and
// fails the test unless it exits 0 within 30 s.
func stopSelf(t *testing.T, p *testproc.Proc) {
	t.Helper()
	if err := p.Stop(30 * time.Second); err != nil {
		t.Fatalf("%v\n%s", err, p.Log())
	}
	if err := p.Err(); err != nil {
		t.Fatalf("%s: %v\n%s", p.Name, err, p.Log())
	}
}

// waitLog waits up to 10 s until the daemon's log holds substr.
func waitLog(t *testing.T, p *testproc.Proc, substr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitLog(ctx, substr, 1); err != nil {
		t.Fatal(err)
	}
}

// logOf makes a log reader a fmt.Stringer, for waitFor.
type logOf func() string

func (f logOf) String() string { return f() }

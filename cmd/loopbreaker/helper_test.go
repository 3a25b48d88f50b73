package main

import (
	"bytes"
	"os"
	"os/exec"
	"testing"

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

// syncBuffer is an output buffer that a process (or the daemon's logger)
// and the test may use at once.
type syncBuffer = testproc.Buffer

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/loopbreaker/loopbreaker/loopdetect/policy"
)

// runReload asks a running daemon to reload its policy (SIGHUP). The daemon
// logs whether the new file was taken or refused; a refused file keeps the
// running policy.
func runReload(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("reload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pidFile := fs.String("pidfile", "", "the daemon's pid file (default: loopbreaker.pid beside the state file)")
	statePath := fs.String("state", "", "the daemon's state file, to find its pid file (same default as serve)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *pidFile == "" {
		*pidFile = defaultPidFile(statePathWithoutPolicy(*statePath))
	}
	b, err := os.ReadFile(*pidFile)
	if err != nil {
		fmt.Fprintf(stderr, "reload: no running daemon found: %v\n", err)
		return 1
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		fmt.Fprintf(stderr, "reload: %s does not hold a pid\n", *pidFile)
		return 1
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			fmt.Fprintf(stderr, "reload: daemon %d from %s is not running\n", pid, *pidFile)
		} else {
			fmt.Fprintf(stderr, "reload: signalling %d: %v\n", pid, err)
		}
		return 1
	}
	fmt.Fprintf(stdout, "reload: sent SIGHUP to loopbreaker %d; its log says whether the policy was taken\n", pid)
	return 0
}

// statePathWithoutPolicy is serve's choice of state file as far as it can
// be made without the daemon's policy: the flag, the environment, else the
// system path. A daemon whose policy sets state_file is found with -state
// (or -pidfile, -admin).
func statePathWithoutPolicy(flagValue string) string {
	return statePath(flagValue, &policy.Policy{})
}

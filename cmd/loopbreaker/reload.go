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

	"github.com/loopbreaker/loopbreaker/cmd/loopbreaker/internal/admin"
	"github.com/loopbreaker/loopbreaker/loopdetect/policy"
)

// runReload asks a running daemon to reload its policy (SIGHUP). The daemon
// logs whether the new file was taken or refused; a refused file keeps the
// running policy.
func runReload(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("reload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pidFile := fs.String("pidfile", "", "the daemon's pid file (default: where the daemon of -state puts it; without -state and $"+envState+", /run/loopbreaker/"+admin.PidFileName+", then /var/lib/loopbreaker/"+admin.PidFileName+")")
	statePath := fs.String("state", "", "the daemon's state file, to find its pid file (default $"+envState+")")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	candidates := pidFiles(*pidFile, *statePath)
	var tried []string
	for _, path := range candidates {
		pid, why := livePid(path)
		if why != "" {
			tried = append(tried, path+": "+why)
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
			fmt.Fprintf(stderr, "loopbreaker reload: signalling %d from %s: %v\n", pid, path, err)
			return 1
		}
		fmt.Fprintf(stdout, "reload: sent SIGHUP to loopbreaker %d; its log says whether the policy was taken\n", pid)
		return 0
	}
	fmt.Fprintf(stderr, "loopbreaker reload: no running daemon found; tried %s\n", strings.Join(tried, "; "))
	return 1
}

// pidFiles are the pid files to try, in order: -pidfile, else where the
// daemon of -state or $LOOPBREAKER_STATE puts it, else the installed
// daemon's places (admin.Layout).
func pidFiles(flagValue, stateFlag string) []string {
	if flagValue != "" {
		return []string{flagValue}
	}
	if stateFlag == "" {
		stateFlag = os.Getenv(envState)
	}
	return admin.Installed.Candidates(stateFlag, admin.PidFileName)
}

// livePid reads a pid file and says why it names no running process, if
// it does not.
func livePid(path string) (int, string) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, "no such file"
		}
		return 0, err.Error()
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, "holds no pid"
	}
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return 0, fmt.Sprintf("process %d is not running", pid)
	}
	return pid, ""
}

// statePathWithoutPolicy is serve's choice of state file as far as it can
// be made without the daemon's policy: the flag, the environment, else the
// system path.
func statePathWithoutPolicy(flagValue string) string {
	return statePath(flagValue, &policy.Policy{})
}

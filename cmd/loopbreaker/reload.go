package main

import (
	"context"
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

var reloadCommand = &command{
	name:    "reload",
	summary: "make the running daemon reload its policy file (SIGHUP)",
	doc: `The daemon logs whether the new policy was taken; a policy that does not load keeps the running one. Check it first with loopbreaker check-policy. Under systemd, systemctl reload loopbreaker does the same.

The daemon is found through its pid file: -pidfile; else, for the state file -state or $LOOPBREAKER_STATE names, where that daemon puts it (beside it); else /run/loopbreaker/loopbreaker.pid (the systemd unit's daemon), then /var/lib/loopbreaker/loopbreaker.pid. A pid file whose process is gone is passed over.`,
	setup: func(fs *flag.FlagSet) runFunc {
		pidFile := fs.String("pidfile", "", "the daemon's pid `FILE` (default: looked for as described above)")
		statePath := fs.String("state", "", "the daemon's state `FILE`, to find its pid file (default $"+envState+")")
		return func(_ context.Context, _ []string, stdout, _ io.Writer) error {
			var tried []string
			for _, path := range pidFiles(*pidFile, *statePath) {
				pid, why := livePid(path)
				if why != "" {
					tried = append(tried, path+": "+why)
					continue
				}
				if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
					return fmt.Errorf("signalling %d from %s: %w", pid, path, err)
				}
				fmt.Fprintf(stdout, "reload: sent SIGHUP to loopbreaker %d; its log says whether the policy was taken\n", pid)
				return nil
			}
			return fmt.Errorf("no running daemon found; tried %s", strings.Join(tried, "; "))
		}
	},
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

// Package e2e runs loopbreaker, as a real process, behind a real Postfix
// from Debian's packages, with Go SMTP sinks standing for the outside world
// and the local mailbox store.
package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv"
	"github.com/loopbreaker/loopbreaker/testenv/postfix"
)

// daemonBin is the loopbreaker binary built once for the package's tests.
var daemonBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	if postfix.Available() != nil || testing.Short() {
		return m.Run() // the tests skip themselves, saying why
	}
	dir, err := os.MkdirTemp("", "loopbreaker-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if daemonBin, err = testenv.BuildDaemon(ctx, dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func requirePostfix(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test with a real Postfix: skipped in -short mode")
	}
	postfix.SkipIfUnavailable(t)
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }

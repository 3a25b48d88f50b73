package postfix

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// envWatchdogChild makes the test binary the process that starts an
// instance and then dies without stopping it.
const envWatchdogChild = "LB_POSTFIX_WATCHDOG_DIR"

// TestWatchdogStopsAnOrphanedInstance: a process that started an instance
// and is killed (SIGKILL: no Stop, no cleanup) leaves no Postfix process
// behind; the watchdog stops the instance when its end of the pipe closes.
func TestWatchdogStopsAnOrphanedInstance(t *testing.T) {
	SkipIfUnavailable(t)
	if dir := os.Getenv(envWatchdogChild); dir != "" {
		inst, err := Start(testCtx(t), Config{Dir: dir, Name: "orphan"})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("\nconfdir=%s\n", inst.ConfigDir())
		select {} // until killed
	}
	ctx := testCtx(t)
	child := &testproc.Proc{Name: "instance owner", Bin: os.Args[0], Args: []string{"-test.run=^TestWatchdogStopsAnOrphanedInstance$", "-test.v"},
		Env: []string{envWatchdogChild + "=" + t.TempDir()}}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(child.Kill)
	if err := child.WaitLog(ctx, "confdir=", 1); err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(child.Log(), "confdir=")
	confDir, _, _ := strings.Cut(rest, "\n")
	if len(instanceProcs(confDir)) == 0 {
		t.Fatalf("no process of the instance at %s runs", confDir)
	}
	child.Kill()
	gone, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := testproc.Poll(gone, "the orphaned instance to stop", func(context.Context) error {
		if pids := instanceProcs(confDir); len(pids) > 0 {
			return fmt.Errorf("processes %v still run", pids)
		}
		return nil
	}); err != nil {
		t.Fatal(errors.Join(err, waitGone(confDir, time.Second)))
	}
}

package e2e

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReloadKeepsCountsAndRefusesBadFiles: SIGHUP with a broken file keeps
// the running policy; SIGHUP with a raised limit applies it and keeps the
// counts taken so far.
func TestReloadKeepsCountsAndRefusesBadFiles(t *testing.T) {
	requirePostfix(t)
	pol := policyFile(t, "5", "redirect")
	h := startHub(t, "-policy", pol)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const alice, typo = "alice@corp.example", "nobody@outside.example"
	n := 0
	fw := func() { send(t, ctx, h, alice, []string{typo}, forwardedNDR(alice, typo, n)); n++ }
	for i := 0; i < 3; i++ {
		fw()
	}
	good, _ := os.ReadFile(pol)
	os.WriteFile(pol, []byte(strings.Replace(string(good), "limit = 5", "limit = [5", 1)), 0o644)
	h.daemon.Signal(syscall.SIGHUP)
	if err := h.daemon.WaitLog(ctx, "policy reload refused; the running policy stays", 1); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(h.daemon.Log(), pol+":") {
		t.Errorf("refusal does not name the file and line:\n%s", h.daemon.Log())
	}
	fw()
	fw() // 5: still within the old limit
	os.WriteFile(pol, []byte(strings.Replace(string(good), "limit = 5", "limit = 6", 1)), 0o644)
	// This time through the command, which finds the daemon by its state file.
	if out, err := exec.Command(daemonBin, "reload", "-state", h.daemon.State).CombinedOutput(); err != nil {
		t.Fatalf("loopbreaker reload: %v\n%s", err, out)
	}
	if err := h.daemon.WaitLog(ctx, `msg="policy reloaded"`, 1); err != nil {
		t.Fatal(err)
	}
	fw() // 6: within the new limit
	fw() // 7: over it, since the 6 counted before are kept
	if err := h.mailstore.WaitCount(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := h.outside.WaitCount(ctx, 6); err != nil {
		t.Fatal(err)
	}
	if err := h.pf.WaitQueueEmpty(ctx); err != nil {
		t.Fatal(err)
	}
	if out, q := h.outside.Count(), h.mailstore.Count(); out != 6 || q != 1 {
		t.Fatalf("outside %d quarantine %d, want 6 and 1", out, q)
	}
}

package e2e

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// lb runs the loopbreaker CLI against the hub's daemon.
func lb(t *testing.T, h *hub, args ...string) (string, error) {
	t.Helper()
	args = append(args, "-admin", filepath.Join(filepath.Dir(h.daemon.State), "admin.sock"))
	out, err := exec.Command(daemonBin, args...).CombinedOutput()
	return string(out), err
}

// TestAdminCLIListsAndReleasesBlocks: during a storm the CLI shows the
// block, the audit trail and the counts; releasing the key lets the next
// forward through.
func TestAdminCLIListsAndReleasesBlocks(t *testing.T) {
	requirePostfix(t)
	h := startHub(t, "-policy", policyFile(t, "2", "redirect"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const alice, typo = "alice@corp.example", "nobody@outside.example"
	for i := 0; i < 4; i++ {
		send(t, ctx, h, alice, []string{typo}, forwardedNDR(alice, typo, i))
	}

	out, err := lb(t, h, "blocks")
	if err != nil || !strings.Contains(out, "forward-storm") || !strings.Contains(out, alice) || !strings.Contains(out, stormSubj) {
		t.Fatalf("blocks: %v\n%s", err, out)
	}
	out, err = lb(t, h, "status", "-json")
	var st struct {
		ActiveBlocks int    `json:"active_blocks"`
		StateFile    string `json:"state_file"`
	}
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.ActiveBlocks != 1 || st.StateFile != h.daemon.State {
		t.Fatalf("status: %v\n%s", err, out)
	}
	out, err = lb(t, h, "events")
	if err != nil || strings.Count(out, "redirect") != 2 || !strings.Contains(out, "forward-storm") {
		t.Fatalf("events: %v\n%s", err, out)
	}
	out, err = lb(t, h, "explain", alice)
	if err != nil || !regexpMatch(`forward-storm\s+3\s+2\s+15m0s\s+20`, out) {
		t.Fatalf("explain: %v\n%s", err, out)
	}

	out, err = lb(t, h, "release", alice)
	if err != nil || !strings.Contains(out, "released 1 block") {
		t.Fatalf("release: %v\n%s", err, out)
	}
	if out, _ := lb(t, h, "blocks", "-json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("blocks after release: %s", out)
	}
	// The next forward starts a fresh count and passes.
	send(t, ctx, h, alice, []string{typo}, forwardedNDR(alice, typo, 4))
	if err := h.outside.WaitCount(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if err := h.pf.WaitQueueEmpty(ctx); err != nil {
		t.Fatal(err)
	}
	if out, q := h.outside.Count(), h.mailstore.Count(); out != 3 || q != 2 {
		t.Fatalf("outside %d, quarantine %d; want 3 and 2", out, q)
	}
	if out, _ := lb(t, h, "release", "-rule", "no-such-rule"); !strings.Contains(out, `no rule "no-such-rule"`) {
		t.Fatalf("release of an unknown rule: %s", out)
	}
}

func TestAdminCLIWhenTheDaemonIsNotRunning(t *testing.T) {
	requirePostfix(t) // for the daemon binary
	out, err := exec.Command(daemonBin, "blocks", "-admin", filepath.Join(t.TempDir(), "admin.sock")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "loopbreaker is not running") {
		t.Fatalf("%v: %s", err, out)
	}
}

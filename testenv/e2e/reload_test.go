package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv"
	"github.com/loopbreaker/loopbreaker/testenv/redisserver"
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

// adminReload asks d to reload its policy through the admin API (POST
// /v1/reload on its unix socket); it returns the API's error, if any.
func adminReload(t *testing.T, ctx context.Context, d *testenv.Daemon) error {
	t.Helper()
	sock := filepath.Join(filepath.Dir(d.State), "admin.sock")
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "unix", sock)
	}}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://loopbreaker/v1/reload", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Error string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, body.Error)
	}
	return nil
}

// TestReloadChoosesTheBackend: a reload that changes the policy's redis
// moves the daemon's state there without a restart, with the blocks in
// force: Redis A → Redis B (status shows B, the block made in A still acts,
// with A gone), a Redis that does not answer is refused with the reason
// (through the admin API; the running policy and backend stay), then B →
// the state file alone (the block still acts, with B gone). -redis on the
// command line wins over the policy's redis across reloads.
func TestReloadChoosesTheBackend(t *testing.T) {
	requireDaemon(t)
	a, b := redisserver.MustStart(t), redisserver.MustStart(t)
	policyWith := func(redis string) string {
		p := forwardStormPolicy("2", "redirect", "sender", "")
		if redis != "" {
			p = "redis = \"" + redis + "\"\n" + p
		}
		return p
	}
	pol := writePolicy(t, policyWith(a.URL(0)))
	d := startServing(t, "-policy", pol, "-name", "mta1")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const alice = "alice@corp.example"
	backend := func(wantName, wantAddr, when string) {
		t.Helper()
		st := statusOf(t, d)
		if st.Backend.Name != wantName || st.Backend.Address != wantAddr || st.Backend.Degraded || st.Name != "mta1" {
			t.Fatalf("%s: status %+v, want backend %s %s, not degraded, name mta1", when, st, wantName, wantAddr)
		}
	}
	// stillBlocked checks that alice's block is listed and acts on her
	// next forward.
	n := 100
	stillBlocked := func(when string) {
		t.Helper()
		out, err := lbAt(t, d, "blocks")
		if err != nil || !strings.Contains(out, alice) {
			t.Fatalf("%s: alice's block is not listed: %v\n%s", when, err, out)
		}
		if n++; !milterForward(t, d, alice, "nobody@outside.example", n) {
			t.Fatalf("%s: alice's next forward was let through", when)
		}
	}
	reloaded := 0
	reloadTo := func(redis string) {
		t.Helper()
		if err := os.WriteFile(pol, []byte(policyWith(redis)), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(daemonBin, "reload", "-state", d.State).CombinedOutput(); err != nil {
			t.Fatalf("loopbreaker reload: %v\n%s", err, out)
		}
		reloaded++
		if err := d.WaitLog(ctx, `msg="policy reloaded"`, reloaded); err != nil {
			t.Fatal(err)
		}
	}

	backend("redis", a.URL(0), "at start")
	stormAt(t, d, alice)

	// Redis A → Redis B; A is not needed any more.
	reloadTo(b.URL(0))
	backend("redis", b.URL(0), "after the reload to B")
	a.Kill()
	stillBlocked("in B, A gone")

	// A Redis that does not answer: refused, with the reason.
	down := freeLoopbackAddr(t)
	if err := os.WriteFile(pol, []byte(policyWith("redis://"+down+"/0")), 0o644); err != nil {
		t.Fatal(err)
	}
	err := adminReload(t, ctx, d)
	if err == nil || !strings.Contains(err.Error(), "the running policy stays") || !strings.Contains(err.Error(), "does not answer") {
		t.Fatalf("reload to a Redis that does not answer: %v", err)
	}
	t.Logf("refused: %v", err)
	if err := d.WaitLog(ctx, "policy reload refused; the running policy stays", 1); err != nil {
		t.Fatal(err)
	}
	backend("redis", b.URL(0), "after the refused reload")
	stillBlocked("after the refused reload")

	// Redis B → the state file alone; B is not needed any more.
	reloadTo("")
	backend("bbolt", "", "after the reload without redis")
	b.Kill()
	stillBlocked("in the state file, B gone")
	held := regexp.MustCompile(`msg="state moved".*messages_held_up_to=(\S+)`).FindAllStringSubmatch(d.Log(), -1)
	if len(held) != 2 {
		t.Fatalf("the daemon logged %d moves, want 2:\n%s", len(held), d.Log())
	}
	t.Logf("messages held back during the moves: %s (A → B), %s (B → the state file)", held[0][1], held[1][1])
}

// TestReloadKeepsTheCommandLinesRedis: with -redis, a reload whose policy
// names another Redis keeps the state where it is, and the log says why.
func TestReloadKeepsTheCommandLinesRedis(t *testing.T) {
	requireDaemon(t)
	a, b := redisserver.MustStart(t), redisserver.MustStart(t)
	pol := writePolicy(t, forwardStormPolicy("2", "redirect", "sender", ""))
	d := startServing(t, "-policy", pol, "-redis", a.URL(0))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := os.WriteFile(pol, []byte("redis = \""+b.URL(0)+"\"\n"+forwardStormPolicy("2", "redirect", "sender", "")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := adminReload(t, ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := d.WaitLog(ctx, "-redis on the command line wins", 1); err != nil {
		t.Fatal(err)
	}
	if st := statusOf(t, d); st.Backend.Address != a.URL(0) {
		t.Fatalf("after the reload: backend %+v, want %s", st.Backend, a.URL(0))
	}
}

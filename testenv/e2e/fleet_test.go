package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	gomilter "github.com/d--j/go-milter"

	"github.com/loopbreaker/loopbreaker/testenv"
	"github.com/loopbreaker/loopbreaker/testenv/browser"
	"github.com/loopbreaker/loopbreaker/testenv/miltertest"
	"github.com/loopbreaker/loopbreaker/testenv/redisserver"
)

// requireDaemon skips a test of the daemon alone (no Postfix) when the
// package's binary was not built.
func requireDaemon(t *testing.T) {
	t.Helper()
	if daemonBin == "" {
		t.Skip("the loopbreaker binary is built with the end-to-end tests (not in -short mode, and Postfix installed)")
	}
}

// startServing starts the daemon (testenv.MustStartDaemon) and waits
// until it serves its admin socket too, which it opens after the milter
// socket MustStartDaemon waits for.
func startServing(t *testing.T, args ...string) *testenv.Daemon {
	t.Helper()
	d := testenv.MustStartDaemon(t, daemonBin, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.WaitLog(ctx, `msg="loopbreaker serving"`, 1); err != nil {
		t.Fatal(err)
	}
	return d
}

// lbAt runs a loopbreaker admin command against d's admin socket (beside
// its state file).
func lbAt(t *testing.T, d *testenv.Daemon, args ...string) (string, error) {
	t.Helper()
	args = append(args, "-admin", filepath.Join(filepath.Dir(d.State), "admin.sock"))
	out, err := exec.Command(daemonBin, args...).CombinedOutput()
	return string(out), err
}

// milterForward puts the forwarded NDR n of from to to through d's milter
// socket, as Postfix's smtpd would; it reports whether d acted on it
// (asked for a modification: redirect).
func milterForward(t *testing.T, d *testenv.Daemon, from, to string, n int) bool {
	t.Helper()
	head, body, _ := bytes.Cut(forwardedNDR(from, to, n), []byte("\r\n\r\n"))
	var hdr [][2]string
	for _, line := range strings.Split(string(head), "\r\n") {
		name, value, _ := strings.Cut(line, ": ")
		hdr = append(hdr, [2]string{name, value})
	}
	r, err := miltertest.MTA{}.Send(d.Addr, miltertest.Message{From: from, Rcpts: []string{to}, Headers: hdr, Body: string(body)})
	if err != nil {
		t.Fatal(err)
	}
	if r.Early != "" || r.Action.Type != gomilter.ActionAccept {
		t.Fatalf("forward %d of %s: action %v (early: %q)", n, from, r.Action, r.Early)
	}
	return len(r.Mods) > 0
}

// stormAt sends forwards of from through d until one is acted on (the
// block starts); it fails after 10.
func stormAt(t *testing.T, d *testenv.Daemon, from string) {
	t.Helper()
	for n := range 10 {
		if milterForward(t, d, from, "nobody@outside.example", n) {
			return
		}
	}
	t.Fatalf("no block on %s after 10 forwards:\n%s", from, d.Log())
}

// daemonStatus is what the tests read of `loopbreaker status -json`.
type daemonStatus struct {
	Name    string `json:"name"`
	Backend struct {
		Name     string `json:"name"`
		Address  string `json:"address"`
		Degraded bool   `json:"degraded"`
	} `json:"backend"`
}

// statusOf is d's `loopbreaker status -json`.
func statusOf(t *testing.T, d *testenv.Daemon) daemonStatus {
	t.Helper()
	out, err := lbAt(t, d, "status", "-json")
	var st daemonStatus
	if err != nil || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("loopbreaker status: %v\n%s", err, out)
	}
	return st
}

// TestEventsOfTheFleet: two daemons (-name mta1, -name mta2) share one
// Redis; a storm through mta1 is blocked by mta1, and `loopbreaker events`
// against mta2's admin socket lists mta1's decisions in an MTA column
// (and "mta" in -json); mta2's status names it.
func TestEventsOfTheFleet(t *testing.T) {
	requireDaemon(t)
	rs := redisserver.MustStart(t).URL(0)
	pol := policyFile(t, "2", "redirect")
	d1 := startServing(t, "-policy", pol, "-redis", rs, "-name", "mta1")
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(adminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	adminAddr := freeLoopbackAddr(t)
	d2 := startServing(t, "-policy", pol, "-redis", rs, "-name", "mta2", "-admin-tcp", adminAddr, "-admin-token-file", tokenFile)
	const alice = "alice@corp.example"
	stormAt(t, d1, alice)
	if st := statusOf(t, d2); st.Name != "mta2" || st.Backend.Name != "redis" {
		t.Fatalf("mta2's status: %+v", st)
	}
	// mta1 sends its events to Redis in the background: wait for them.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var evs []struct {
		MTA    string `json:"mta"`
		Action string `json:"action"`
		Key    string `json:"key"`
	}
	waitUntil(t, ctx, 0, "mta2 to list the fleet's events", func() bool {
		out, err := lbAt(t, d2, "events", "-json")
		if err != nil || json.Unmarshal([]byte(out), &evs) != nil {
			t.Fatalf("loopbreaker events -json on mta2: %v\n%s", err, out)
		}
		return len(evs) > 0
	})
	if e := evs[len(evs)-1]; e.MTA != "mta1" || e.Action != "redirect" || e.Key != alice {
		t.Fatalf("the fleet's last event on mta2: %+v, want mta1's redirect of %s", e, alice)
	}
	out, err := lbAt(t, d2, "events")
	if err != nil {
		t.Fatalf("loopbreaker events on mta2: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "TIME") || strings.Fields(lines[0])[1] != "MTA" ||
		strings.Fields(lines[len(lines)-1])[1] != "mta1" {
		t.Fatalf("loopbreaker events on mta2 lacks mta1 in an MTA column:\n%s", out)
	}
	t.Logf("loopbreaker events on mta2:\n%s", out)

	// mta2's admin page: its name in the header, mta1 in the MTA column.
	tab := browser.Open(t, ctx, 0, 0)
	if err := chromedp.Do(tab.Ctx,
		chromedp.Navigate(adminPage(adminAddr)),
		chromedp.WaitVisible(`#events-mta`),
		chromedp.WaitVisible(`#events tbody td.mta`),
	); err != nil {
		t.Fatalf("admin page: %v", err)
	}
	name, err := chromedp.Run(tab.Ctx, chromedp.Text(`#name`))
	if err != nil {
		t.Fatal(err)
	}
	mta, err := chromedp.Run(tab.Ctx, chromedp.Text(`#events tbody tr:first-child td.mta`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(name, "mta2") || mta != "mta1" {
		t.Fatalf("admin page of mta2: header name %q, the last decision's MTA %q; want mta2 and mta1", name, mta)
	}
}

package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// lb runs the loopbreaker CLI against the hub's daemon.
func lb(t *testing.T, h *hub, args ...string) (string, error) {
	t.Helper()
	return lbAt(t, h.daemon, args...)
}

// TestAdminCLIListsAndReleasesBlocks: during a storm the CLI shows the
// block, the audit trail and the counts; releasing the key lets the next
// forward through.
func TestAdminCLIListsAndReleasesBlocks(t *testing.T) {
	requirePostfix(t)
	metricsAddr := freeLoopbackAddr(t)
	h, ctx := startStormHub(t, "2", "redirect", "-metrics", metricsAddr)
	const alice, typo = "alice@corp.example", "nobody@outside.example"
	sendStorm(t, ctx, h, alice, typo, 0, 4)
	send(t, ctx, h, alice, []string{typo}, ordinary(alice, typo, "hello"))

	// The metrics tell the same story.
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`loopbreaker_actions_total{action="redirect",rule="forward-storm"} 2`,
		`loopbreaker_actions_total{action="none",rule=""} 3`,
		`loopbreaker_messages_total{kind="forwarded-ndr"} 4`,
		`loopbreaker_messages_total{kind="ordinary"} 1`,
		`loopbreaker_active_blocks 1`,
		`loopbreaker_decision_seconds_count 5`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", body)
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
	h.settle(t, ctx, 4, 0)
	if out, q := h.outside.Count(), h.mailstore.Count(); out != 4 || q != 2 {
		t.Fatalf("outside %d, quarantine %d; want 4 (2 + ordinary + 1 after the release) and 2", out, q)
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

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	port, err := testproc.FreePort(context.Background(), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// adminToken is the admin API's token in startAdminHub.
const adminToken = "test-token-0123456789abcdef"

// startAdminHub is startHub whose daemon has the policy of policyFile
// (limit, action) and serves the admin API and page on a free loopback TCP
// port with adminToken. It returns the hub and that address.
func startAdminHub(t *testing.T, limit, action string) (*hub, string) {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(adminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeLoopbackAddr(t)
	h := startHub(t, "-policy", policyFile(t, limit, action), "-admin-tcp", addr, "-admin-token-file", tokenFile)
	return h, addr
}

// adminPage is the URL of the admin page at addr, with adminToken in its
// fragment, as the admin opens it.
func adminPage(addr string) string { return "http://" + addr + "/#token=" + adminToken }

// TestAdminMailThroughPostfix: when a block starts, the admin gets one
// message through the local MTA, from the null sender, marked
// auto-generated, with the command that lifts the block.
func TestAdminMailThroughPostfix(t *testing.T) {
	requirePostfix(t)
	pol := policyFile(t, "2", "redirect")
	h := startHub(t, "-policy", pol, "-admin-mail-delay", "300ms")
	// The relay is the hub itself, known only now: point the policy at it.
	src, _ := os.ReadFile(pol)
	src = []byte(strings.Replace(string(src), "quarantine_mailbox =", "admin_address = \"postmaster@corp.example\"\nadmin_relay = \""+h.pf.SMTPAddr()+"\"\nquarantine_mailbox =", 1))
	os.WriteFile(pol, src, 0o644)
	if out, err := lb(t, h, "status"); err != nil {
		t.Fatal(err, out)
	}
	if out, err := exec.Command(daemonBin, "reload", "-state", h.daemon.State).CombinedOutput(); err != nil {
		t.Fatal(err, string(out))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := h.daemon.WaitLog(ctx, `msg="policy reloaded"`, 1); err != nil {
		t.Fatal(err)
	}
	const alice, typo = "alice@corp.example", "nobody@outside.example"
	for i := 0; i < 6; i++ {
		send(t, ctx, h, alice, []string{typo}, forwardedNDR(alice, typo, i))
	}
	// 4 redirected + 1 admin mail reach the mailstore.
	h.settle(t, ctx, 0, 5)
	var notes []string
	for _, m := range h.mailstore.Messages() {
		if len(m.To) == 1 && m.To[0] == "postmaster@corp.example" {
			if m.From != "" || m.Header.Get("Auto-Submitted") != "auto-generated" {
				t.Errorf("admin mail from %q, Auto-Submitted %q", m.From, m.Header.Get("Auto-Submitted"))
			}
			notes = append(notes, string(m.Data))
		}
	}
	if len(notes) != 1 {
		t.Fatalf("%d admin mails, want exactly 1 for the one block", len(notes))
	}
	for _, want := range []string{"Key:       alice@corp.example", "loopbreaker release alice@corp.example -rule forward-storm", stormSubj} {
		if !strings.Contains(notes[0], want) {
			t.Errorf("admin mail lacks %q:\n%s", want, notes[0])
		}
	}
}

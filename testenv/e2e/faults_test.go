package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/loopbreaker/loopbreaker/testenv"
	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// Issue 9, faults: the state file on a full disk, a corrupt state file,
// Postfix's smtpd dying mid-session, SIGHUP storms and kill -9 under load.

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// metricValue returns the value of the sample named exactly name (with its
// labels), or -1.
func metricValue(metrics, name string) float64 {
	for _, l := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

type statusJSON struct {
	ActiveBlocks int `json:"active_blocks"`
	Backend      struct {
		Name      string `json:"name"`
		Degraded  bool   `json:"degraded"`
		LastError string `json:"last_error"`
	} `json:"backend"`
	Rules []string `json:"rules"`
}

func status(t *testing.T, h *hub) statusJSON {
	t.Helper()
	out, err := lb(t, h, "status", "-json")
	var st statusJSON
	if err != nil || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	return st
}

// TestStateOnFullDiskFailsOpen puts the state file on a 256 KiB tmpfs and
// fills it. Mail keeps flowing (no tempfail, ordinary mail delivered, the
// storm still contained by the block held in memory); the failed writes
// are logged, counted in loopbreaker_state_write_errors_total, and
// `loopbreaker status` says the state is degraded. When space comes back,
// the next write succeeds and the state is healthy again.
func TestStateOnFullDiskFailsOpen(t *testing.T) {
	requirePostfix(t)
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	mnt := filepath.Join(t.TempDir(), "full")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s)", err, out)
	}
	// Registered first, so it runs after the daemon has stopped.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", mnt, err, out)
		}
	})
	metricsAddr := freeLoopbackAddr(t)
	adminSock := filepath.Join(t.TempDir(), "admin.sock")
	h := startHub(t, "-policy", policyFile(t, "2", "redirect"), "-state", filepath.Join(mnt, "state.db"),
		"-metrics", metricsAddr, "-admin", adminSock, "-pidfile", filepath.Join(t.TempDir(), "lb.pid"))
	h.daemon.State = filepath.Join(filepath.Dir(adminSock), "state.db") // lb() finds admin.sock beside it
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const alice, typo = "alice@corp.example", "nobody@outside.example"
	send(t, ctx, h, alice, []string{typo}, forwardedNDR(alice, typo, 0))
	if st := status(t, h); st.Backend.Degraded {
		t.Fatalf("degraded before the disk is full: %+v", st)
	}

	// Fill the file system.
	filler := filepath.Join(mnt, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the tmpfs: %v", err)
			}
			break
		}
	}
	f.Close()

	// A storm (limit 2: one counted before) and ordinary mail, with
	// enough distinct keys to need new pages in the file.
	for i := 1; i < 6; i++ {
		send(t, ctx, h, alice, []string{typo}, forwardedNDR(alice, typo, i))
	}
	for i := 0; i < 40; i++ {
		s := fmt.Sprintf("user%d@corp.example", i)
		send(t, ctx, h, s, []string{typo}, forwardedNDR(s, typo, i))
	}
	send(t, ctx, h, alice, []string{"friend@outside.example"}, ordinary(alice, "friend@outside.example", "lunch"))
	waitUntil(t, ctx, 30*time.Second, "status to say degraded with the state on a full disk", func() bool { return status(t, h).Backend.Degraded })
	out, _ := lb(t, h, "status")
	if !strings.Contains(out, "DEGRADED") && !strings.Contains(strings.ToLower(out), "degraded") {
		t.Errorf("the status table does not say degraded:\n%s", out)
	}
	m := scrape(t, metricsAddr)
	if v := metricValue(m, "loopbreaker_state_write_errors_total"); v < 1 {
		t.Errorf("loopbreaker_state_write_errors_total = %v, want at least 1", v)
	}
	if v := metricValue(m, "loopbreaker_state_degraded"); v != 1 {
		t.Errorf("loopbreaker_state_degraded = %v, want 1", v)
	}
	if !regexpMatch(`(state flush failed|counting failed).*(no space|ENOSPC|space left)`, h.daemon.Log()) {
		t.Errorf("the daemon did not log the failed write with its cause")
	}
	// Mail flowed: nothing deferred or refused, all delivered or redirected.
	if err := h.pf.WaitQueueEmpty(ctx); err != nil {
		t.Fatal(err)
	}
	out2 := h.outside.Messages()
	if n := len(bySubject(out2, alice, "lunch")); n != 1 {
		t.Errorf("alice's ordinary mail delivered %d times, want 1", n)
	}
	if n, q := len(bySubject(out2, alice, stormSubj)), h.mailstore.Count(); n != 2 || q != 4 {
		t.Errorf("alice's storm: %d passed, %d redirected; want 2 and 4 (the block held in memory)", n, q)
	}
	if got := h.outside.Count() + h.mailstore.Count(); got != 6+40+1 {
		t.Errorf("%d messages delivered, want all %d", got, 6+40+1)
	}

	// Space again: the next write succeeds.
	os.Remove(filler)
	send(t, ctx, h, "carol@corp.example", []string{typo}, forwardedNDR("carol@corp.example", typo, 0))
	waitUntil(t, ctx, 30*time.Second, "the end of degraded after space came back", func() bool { return !status(t, h).Backend.Degraded })
	if v := metricValue(scrape(t, metricsAddr), "loopbreaker_state_degraded"); v != 0 {
		t.Errorf("loopbreaker_state_degraded = %v after recovery, want 0", v)
	}
}

// TestCorruptStateFileAtStart: a state file that is not a bbolt database
// (or whose pages are damaged) stops the daemon at start with a message
// that names the file and says how to start fresh; moving the file aside,
// as the message says, starts the daemon with the same policy.
func TestCorruptStateFileAtStart(t *testing.T) {
	requirePostfix(t) // for the daemon binary
	pol := policyFile(t, "2", "redirect")
	good := filepath.Join(t.TempDir(), "state.db")
	makeState(t, good)
	makeState := func(t *testing.T, path string) {
		b, err := os.ReadFile(good)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(path, b, 0o640)
	}
	for _, tc := range []struct {
		name    string
		corrupt func(t *testing.T, path string)
	}{
		{"garbage", func(t *testing.T, path string) {
			os.WriteFile(path, bytes.Repeat([]byte("not a database "), 4096), 0o640)
		}},
		{"truncated", func(t *testing.T, path string) {
			makeState(t, path)
			os.Truncate(path, 100)
		}},
		{"damaged pages", func(t *testing.T, path string) {
			makeState(t, path)
			b, _ := os.ReadFile(path)
			for i := 2 * 4096; i < len(b); i++ {
				b[i] ^= 0x5a
			}
			os.WriteFile(path, b, 0o640)
		}},
		{"damaged meta pages", func(t *testing.T, path string) {
			makeState(t, path)
			b, _ := os.ReadFile(path)
			for i := 16; i < 2*4096 && i < len(b); i += 7 {
				b[i] ^= 0xff
			}
			os.WriteFile(path, b, 0o640)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "state.db")
			tc.corrupt(t, path)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, daemonBin, "serve", "-listen", "inet:0@127.0.0.1", "-state", path, "-policy", pol)
			out, err := cmd.CombinedOutput()
			if err == nil || ctx.Err() != nil {
				t.Fatalf("daemon on a corrupt state file: %v (ctx %v)\n%s", err, ctx.Err(), out)
			}
			s := string(out)
			if strings.Contains(s, "goroutine ") || strings.Contains(s, "panic:") {
				t.Fatalf("a crash instead of a message:\n%s", s)
			}
			for _, want := range []string{path, "mv " + path} {
				if !strings.Contains(s, want) {
					t.Errorf("the message lacks %q:\n%s", want, s)
				}
			}
			// Do what it says: move the file aside; the daemon starts with
			// the same policy and an empty state.
			if err := os.Rename(path, path+".corrupt"); err != nil {
				t.Fatal(err)
			}
			d, err := testenv.StartDaemon(ctx, daemonBin, dir, "-policy", pol)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Stop()
			var out2 []byte
			sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
			defer scancel()
			// The admin socket comes up just after the milter's.
			err = testproc.Poll(sctx, "the admin socket", func(context.Context) (err error) {
				out2, err = exec.Command(daemonBin, "status", "-json", "-admin", filepath.Join(dir, "admin.sock")).CombinedOutput()
				return err
			})
			if err != nil || !strings.Contains(string(out2), pol) {
				t.Fatalf("status after starting fresh: %v\n%s", err, out2)
			}
		})
	}
}

// makeState creates a state file with some counts and a block, by running
// the daemon on it briefly.
func makeState(t *testing.T, path string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := testenv.StartDaemon(ctx, daemonBin, filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() < 3*4096 {
		t.Fatalf("state file: %v %v", fi, err)
	}
}

// smtpdPids lists the smtpd processes of a Postfix instance.
func smtpdPids(confDir string) []int {
	ents, _ := os.ReadDir("/proc")
	want := []byte("MAIL_CONFIG=" + confDir)
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
		if strings.TrimSpace(string(comm)) != "smtpd" {
			continue
		}
		env, _ := os.ReadFile("/proc/" + e.Name() + "/environ")
		if slices.ContainsFunc(bytes.Split(env, []byte{0}), func(v []byte) bool { return bytes.Equal(v, want) }) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestPostfixRestartedMidSession: SMTP sessions are in the middle of their
// messages (the milter has their envelope and some headers) when Postfix's
// smtpd processes die (SIGKILL, as in a crash; master starts new ones),
// and then Postfix is reloaded. The daemon survives, drops the cut sessions
// (its goroutines come back to where they were) without counting their
// half messages, and the next messages are counted and acted on exactly.
func TestPostfixRestartedMidSession(t *testing.T) {
	requirePostfix(t)
	metricsAddr := freeLoopbackAddr(t)
	h, ctx := startStormHub(t, "3", "redirect", "-metrics", metricsAddr)
	const alice, typo = "alice@corp.example", "nobody@outside.example"
	// master throttles a service whose processes die by a signal for
	// service_throttle_time (60 s): make it a second.
	if _, err := h.pf.Postconf("-e", "service_throttle_time=1s"); err != nil {
		t.Fatal(err)
	}
	if err := h.pf.Reload(); err != nil {
		t.Fatal(err)
	}
	send(t, ctx, h, alice, []string{typo}, ordinary(alice, typo, "warm up"))
	// The warm-up's milter session is over before the baseline is taken.
	waitUntil(t, ctx, 0, "the warm-up's milter session to end", func() bool { return milterSessions(t, h.daemon.Addr) == 0 })
	before := metricValue(scrape(t, metricsAddr), "go_goroutines")

	// Four sessions stop in the middle of DATA, with a forwarded NDR's
	// headers sent.
	var conns []*smtp.Client
	for i := 0; i < 4; i++ {
		c, err := smtp.Dial(h.pf.SMTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Hello("client.test"); err != nil {
			t.Fatal(err)
		}
		if err := c.Mail(alice, nil); err != nil {
			t.Fatal(err)
		}
		if err := c.Rcpt(typo, nil); err != nil {
			t.Fatal(err)
		}
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		msg := forwardedNDR(alice, typo, 100+i)
		w.Write(msg[:bytes.Index(msg, []byte("\r\n\r\n"))+4]) // headers only
		conns = append(conns, c)
	}
	// smtpd has opened the four sessions with the milter (connect, HELO,
	// MAIL, RCPT and DATA have reached it: Data returned).
	waitUntil(t, ctx, 0, "the four sessions in the milter", func() bool { return milterSessions(t, h.daemon.Addr) >= 4 })
	pids := smtpdPids(h.pf.ConfigDir())
	if len(pids) < 4 {
		t.Fatalf("found %d smtpd processes, want the 4 in session", len(pids))
	}
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, c := range conns {
		c.Close()
	}
	if err := h.pf.Reload(); err != nil {
		t.Fatal(err)
	}
	// The cut sessions are gone from the daemon.
	waitUntil(t, ctx, 20*time.Second, fmt.Sprintf("the goroutines back to %v, as before the cut sessions", before+2), func() bool {
		return metricValue(scrape(t, metricsAddr), "go_goroutines") <= before+2
	})
	// None of the half messages was counted: the limit of 3 lets 3 through.
	sendStorm(t, ctx, h, alice, typo, 0, 5)
	if err := h.pf.WaitQueueEmpty(ctx); err != nil {
		t.Fatal(err)
	}
	if n, q := len(bySubject(h.outside.Messages(), alice, stormSubj)), h.mailstore.Count(); n != 3 || q != 2 {
		t.Fatalf("after the cut sessions: %d forwards passed and %d redirected, want 3 and 2", n, q)
	}
	if strings.Contains(h.daemon.Log(), "panic") {
		t.Fatalf("the daemon logged a panic:\n%s", h.daemon.Log())
	}
}

// load sends mail from workers until stop is closed: ordinary mail from
// many senders, and a forwarding storm from storm. It records, per
// message, whether Postfix accepted it; a 4xx (milter down with
// milter_default_action = tempfail) is not accepted and is not retried.
type load struct {
	mu         sync.Mutex
	accepted   map[string]bool // by Subject
	tempfailed atomic.Int64
	failed     atomic.Int64
	firstErr   atomic.Value
	n          atomic.Int64
	done       chan struct{}
}

func runLoad(ctx context.Context, h *hub, workers int, storm string, stop <-chan struct{}) *load {
	l := &load{accepted: map[string]bool{}, done: make(chan struct{})}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := int(l.n.Add(1))
				var from, to, subject string
				var msg []byte
				if i%4 == 0 {
					from, to = storm, "nobody@outside.example"
					msg = forwardedNDR(from, to, i)
					msg = bytes.Replace(msg, []byte(stormSubj), []byte(stormSubj+" #"+strconv.Itoa(i)), 1)
					subject = stormSubj + " #" + strconv.Itoa(i)
				} else {
					from = fmt.Sprintf("user%d@corp.example", i%50)
					to = fmt.Sprintf("friend%d@outside.example", i%7)
					subject = fmt.Sprintf("ordinary %d", i)
					msg = ordinary(from, to, subject)
				}
				sctx, cancel := context.WithTimeout(ctx, time.Minute)
				err := testenv.SendMail(sctx, h.pf.SMTPAddr(), from, []string{to}, msg)
				cancel()
				var se *smtp.SMTPError
				switch {
				case err == nil:
					l.mu.Lock()
					l.accepted[subject] = true
					l.mu.Unlock()
				case errors.As(err, &se) && se.Code/100 == 4:
					l.tempfailed.Add(1)
				default:
					l.failed.Add(1)
					l.firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	go func() { wg.Wait(); close(l.done) }()
	return l
}

func (l *load) wait() { <-l.done }

// acceptedCount is how many messages Postfix has accepted so far.
func (l *load) acceptedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.accepted)
}

// waitUntil polls cond until it holds, and fails the test when ctx ends
// first, or within d when d > 0.
func waitUntil(t *testing.T, ctx context.Context, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	if err := testproc.Poll(ctx, what, func(context.Context) error {
		if !cond() {
			return errors.New("not yet")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// milterSessions counts the established TCP connections the daemon
// listening at addr (127.0.0.1:PORT) has accepted: its milter sessions.
func milterSessions(t *testing.T, addr string) int {
	t.Helper()
	_, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	local := fmt.Sprintf(":%04X", port)
	n := 0
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		// sl local_address rem_address st: 01 is ESTABLISHED.
		if len(f) > 3 && strings.HasSuffix(f[1], local) && f[3] == "01" {
			n++
		}
	}
	return n
}

// checkNothingLost: every message Postfix accepted was delivered (to the
// outside, or redirected to the quarantine mailbox), once.
func (l *load) checkNothingLost(t *testing.T, h *hub) (accepted int) {
	t.Helper()
	seen := map[string]int{}
	for _, m := range append(h.outside.Messages(), h.mailstore.Messages()...) {
		seen[m.Subject]++
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lost := 0
	for s := range l.accepted {
		switch seen[s] {
		case 1:
		case 0:
			lost++
			if lost < 5 {
				t.Errorf("accepted by Postfix, never delivered: %q", s)
			}
		default:
			t.Errorf("delivered %d times: %q", seen[s], s)
		}
	}
	if lost > 0 {
		t.Errorf("%d accepted messages lost", lost)
	}
	if v := l.firstErr.Load(); v != nil {
		t.Errorf("%d sends failed other than with a 4xx; first: %v", l.failed.Load(), v)
	}
	return len(l.accepted)
}

// TestSIGHUP100TimesUnderLoad: the policy is reloaded a hundred times
// while four SMTP sessions at a time send ordinary mail and a storm. No
// message is refused, deferred or lost, the reloads do not reset the
// storm's count (exactly the limit passes), and the policy in force at
// the end is the file's.
func TestSIGHUP100TimesUnderLoad(t *testing.T) {
	requirePostfix(t)
	metricsAddr := freeLoopbackAddr(t)
	pol := policyFile(t, "5", "redirect")
	h := startHub(t, "-policy", pol, "-metrics", metricsAddr, "-log-level", "info")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const storm = "alice@corp.example"
	stop := make(chan struct{})
	l := runLoad(ctx, h, 4, storm, stop)
	reloaded := 0
	for i := 0; i < 100; i++ {
		reloaded = strings.Count(h.daemon.Log(), "policy reloaded")
		if err := h.daemon.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Millisecond) // the pace of the SIGHUPs
	}
	// The last reload lands before the load stops: one more reload is
	// logged after the last SIGHUP was sent.
	if err := h.daemon.WaitLog(ctx, "policy reloaded", reloaded+1); err != nil {
		t.Fatal(err)
	}
	close(stop)
	l.wait()
	if err := h.pf.WaitQueueEmpty(ctx); err != nil {
		t.Fatal(err)
	}
	accepted := l.checkNothingLost(t, h)
	if tf := l.tempfailed.Load(); tf != 0 {
		t.Errorf("%d messages tempfailed during the reloads", tf)
	}
	m := scrape(t, metricsAddr)
	reloads := metricValue(m, `loopbreaker_policy_reloads_total{result="ok"}`)
	if reloads < 10 {
		t.Errorf("%v reloads done for 100 SIGHUPs (signals may coalesce, but not that much)", reloads)
	}
	if v := metricValue(m, `loopbreaker_policy_reloads_total{result="refused"}`); v != 0 {
		t.Errorf("%v reloads refused", v)
	}
	if n := len(h.outside.Messages()) - (accepted - h.mailstore.Count()); n != 0 {
		t.Errorf("outside and quarantine do not add up to the accepted (%d off)", n)
	}
	if passed := fromCount(h.outside, storm); passed != 5 {
		t.Errorf("%d storm messages passed across the reloads, want exactly the limit of 5", passed)
	}
	st := status(t, h)
	if len(st.Rules) != 1 || st.Rules[0] != "forward-storm" || st.ActiveBlocks != 1 {
		t.Errorf("policy or blocks after the reloads: %+v", st)
	}
	t.Logf("%d messages accepted, %v reloads for 100 SIGHUPs, %d storm messages redirected", accepted, reloads, h.mailstore.Count())
}

// TestKill9UnderLoadKeepsBlocksAndMail: a block is in force and has acted;
// then, under load (ordinary mail and the storm from four sessions at a
// time), the daemon is killed with SIGKILL and restarted. Postfix tempfails
// what comes while it is down (milter_default_action = tempfail) and loses
// nothing it accepted; the block survives the crash: no storm message
// passes after it, before or after the restart.
func TestKill9UnderLoadKeepsBlocksAndMail(t *testing.T) {
	requirePostfix(t)
	h := startHub(t, "-policy", policyFile(t, "3", "redirect"), "-log-level", "info")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const storm, typo = "alice@corp.example", "nobody@outside.example"
	for i := 0; i < 4; i++ { // 3 pass, the 4th starts the block and is redirected
		send(t, ctx, h, storm, []string{typo}, forwardedNDR(storm, typo, 1000+i))
	}
	if err := h.mailstore.WaitCount(ctx, 1); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	l := runLoad(ctx, h, 4, storm, stop)
	// The load runs through the daemon (a storm message among the first
	// eight), then the daemon is killed.
	waitUntil(t, ctx, 0, "8 messages accepted before the crash", func() bool { return l.acceptedCount() >= 8 })
	h.daemon.Kill()
	// While it is down, Postfix tempfails new sessions; a 30 s wait for
	// one tempfail at most (the check below only logs its absence).
	downCtx, downCancel := context.WithTimeout(ctx, 30*time.Second)
	_ = testproc.Poll(downCtx, "a tempfail", func(context.Context) error {
		if l.tempfailed.Load() == 0 {
			return errors.New("none yet")
		}
		return nil
	})
	downCancel()
	if err := h.daemon.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	// The load runs through the restarted daemon before it stops.
	afterRestart := l.acceptedCount()
	waitUntil(t, ctx, 0, "8 messages accepted after the restart", func() bool { return l.acceptedCount() >= afterRestart+8 })
	close(stop)
	l.wait()
	if err := h.pf.WaitQueueEmpty(ctx); err != nil {
		t.Fatal(err)
	}
	accepted := l.checkNothingLost(t, h)
	if passed := fromCount(h.outside, storm); passed != 3 {
		t.Errorf("%d storm messages reached the outside, want the 3 before the block: the block was lost in the crash", passed)
	}
	bs := blocksJSON(t, h)
	if len(bs) != 1 || bs[0].Key != storm {
		t.Errorf("blocks after the restart: %+v", bs)
	}
	if l.tempfailed.Load() == 0 {
		t.Logf("no message arrived while the daemon was down")
	}
	if !regexp.MustCompile(`loopbreaker serving`).MatchString(h.daemon.Log()) {
		t.Errorf("no restart in the log")
	}
	t.Logf("%d accepted (all delivered), %d tempfailed while the daemon was down, %d redirected", accepted, l.tempfailed.Load(), h.mailstore.Count())
}

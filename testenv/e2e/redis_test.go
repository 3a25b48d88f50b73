package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv"
	"github.com/loopbreaker/loopbreaker/testenv/postfix"
	"github.com/loopbreaker/loopbreaker/testenv/redisserver"
	"github.com/loopbreaker/loopbreaker/testenv/smtpsink"
)

// startHubs starts two Postfix hubs for corp.example, each with a
// loopbreaker of its own; both daemons share the Redis at url, and both
// hubs relay to the same outside and mailstore sinks.
func startHubs(t *testing.T, url string, daemonArgs ...string) (h1, h2 *hub) {
	t.Helper()
	outside, mailstore := smtpsink.MustStart(t, "outside"), smtpsink.MustStart(t, "mailstore")
	var hubs [2]*hub
	for i := range hubs {
		h := &hub{outside: outside, mailstore: mailstore}
		metrics := freeLoopbackAddr(t)
		args := append([]string{"-local-domains", "corp.example", "-quarantine-mailbox", quarantine, "-log-level", "debug", "-redis", url, "-metrics", metrics}, daemonArgs...)
		h.daemon = testenv.MustStartDaemon(t, daemonBin, args...)
		hubMetricsAddr[h] = metrics
		name := fmt.Sprintf("hub%d", i+1)
		h.pf = postfix.MustStart(t, postfix.Config{
			Name:       name,
			MyHostname: name + ".corp.example",
			MyDomain:   "corp.example",
			Transports: map[string]string{"corp.example": "smtp:" + mailstore.Nexthop()},
			RelayHost:  outside.Nexthop(),
			Milters:    h.daemon.PostfixSpec,
			// A milter that does not answer must show up as a failure
			// here, not as mail passing unfiltered.
			MainCF: map[string]string{"milter_default_action": "tempfail"},
		})
		hubs[i] = h
	}
	return hubs[0], hubs[1]
}

// hubMetricsAddr is where each hub's daemon serves its metrics.
var hubMetricsAddr = map[*hub]string{}

// redisMetric reads one unlabelled metric of h's daemon, as text.
func redisMetric(t *testing.T, h *hub, name string) string {
	t.Helper()
	resp, err := http.Get("http://" + hubMetricsAddr[h] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	t.Fatalf("no metric %s:\n%s", name, body)
	return ""
}

// fromCount counts a sink's messages from an envelope sender.
func fromCount(s *smtpsink.Sink, from string) int {
	n := 0
	for _, m := range s.Messages() {
		if m.From == from {
			n++
		}
	}
	return n
}

// stormOver sends n forwarded NDRs of from, alternating between the hubs,
// two SMTP clients at once (one per hub). Every message must be accepted.
func stormOver(t *testing.T, ctx context.Context, from string, first, n int, hubs ...*hub) {
	t.Helper()
	const typo = "nobody@outside.example"
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for k, h := range hubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := k; i < n; i += len(hubs) {
				if err := testenv.SendMail(ctx, h.pf.SMTPAddr(), from, []string{typo}, forwardedNDR(from, typo, first+i)); err != nil {
					errs <- fmt.Errorf("message %d of %s through %s: %w", first+i, from, h.pf.Name(), err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// backendOf reads a daemon's backend status through the CLI.
func backendOf(t *testing.T, h *hub) (name string, degraded bool, outages uint64) {
	t.Helper()
	out, err := lb(t, h, "status", "-json")
	var st struct {
		Backend struct {
			Name     string `json:"name"`
			Degraded bool   `json:"degraded"`
			Outages  uint64 `json:"outages"`
		} `json:"backend"`
	}
	if err != nil || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("loopbreaker status: %v\n%s", err, out)
	}
	return st.Backend.Name, st.Backend.Degraded, st.Backend.Outages
}

// waitShared waits until the daemons' status says shared (not degraded).
func waitShared(t *testing.T, ctx context.Context, hubs ...*hub) {
	t.Helper()
	for _, h := range hubs {
		waitUntil(t, ctx, 0, h.pf.Name()+"'s loopbreaker to be shared again after Redis came back", func() bool {
			_, degraded, _ := backendOf(t, h)
			return !degraded
		})
	}
}

// settle waits until both hubs' queues are empty and the sinks hold want
// messages between them.
func settle(t *testing.T, ctx context.Context, want int, h1, h2 *hub) {
	t.Helper()
	for _, h := range []*hub{h1, h2} {
		if err := h.pf.WaitQueueEmpty(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, ctx, 0, fmt.Sprintf("%d messages in the sinks", want), func() bool {
		return h1.outside.Count()+h1.mailstore.Count() >= want
	})
}

// TestRedisTwoHubsShareOneCount: two loopbreaker daemons behind two
// Postfix hubs share one real Redis (forward-storm: 10 per 15 min, then
// redirect to the quarantine mailbox).
//
//  1. A storm split over both hubs stops exactly at the limit: 10 of 30
//     reach the outside. A block made through one daemon is seen by the
//     other and released from it.
//  2. Redis is killed in the middle of a storm: every message is still
//     accepted (no tempfail), both daemons say degraded, and each counts on
//     its own: exactly 10 more pass per hub. Ordinary mail flows.
//  3. Redis comes back (empty): both daemons reconnect, push the blocks
//     they made meanwhile (one block, 2+2 messages acted on), and a new
//     storm split over both stops at 10 again.
func TestRedisTwoHubsShareOneCount(t *testing.T) {
	requirePostfix(t)
	rs := redisserver.MustStart(t)
	h1, h2 := startHubs(t, rs.URL(0), "-policy", policyFile(t, "10", "redirect"))
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const alice, bob, carol = "alice@corp.example", "bob@corp.example", "carol@corp.example"
	for _, h := range []*hub{h1, h2} {
		if name, degraded, _ := backendOf(t, h); name != "redis" || degraded {
			t.Fatalf("%s: backend %s degraded=%v", h.pf.Name(), name, degraded)
		}
	}

	// 1. One count over both hubs.
	stormOver(t, ctx, alice, 0, 30, h1, h2)
	settle(t, ctx, 30, h1, h2)
	if out, q := fromCount(h1.outside, alice), fromCount(h1.mailstore, alice); out != 10 || q != 20 {
		t.Fatalf("alice's storm over two hubs: %d reached the outside, %d quarantined; want exactly 10 and 20", out, q)
	}
	t.Logf("storm split over two hubs: 10 of 30 passed (limit 10), 20 redirected to the quarantine mailbox")
	var bs []struct {
		Key   string `json:"key"`
		Count int    `json:"count"`
	}
	out, err := lb(t, h2, "blocks", "-json")
	if err != nil || json.Unmarshal([]byte(out), &bs) != nil || len(bs) != 1 || bs[0].Key != alice || bs[0].Count != 20 {
		t.Fatalf("hub2's daemon's blocks: %v\n%s", err, out)
	}
	if out, err := lb(t, h2, "release", alice); err != nil {
		t.Fatalf("release from hub2's daemon: %v\n%s", err, out)
	}
	if out, err := lb(t, h1, "blocks", "-json"); err != nil || json.Unmarshal([]byte(out), &bs) != nil || len(bs) != 0 {
		t.Fatalf("hub1's daemon still lists blocks after the release from hub2's: %v\n%s", err, out)
	}

	// 2. Redis dies in the middle of bob's storm.
	stormOver(t, ctx, bob, 0, 6, h1, h2) // shared count 6 of 10
	rs.Kill()
	stormOver(t, ctx, bob, 6, 24, h1, h2) // 12 per hub, counted locally
	send(t, ctx, h1, bob, []string{"friend@outside.example"}, ordinary(bob, "friend@outside.example", "lunch during the outage"))
	settle(t, ctx, 30+30+1, h1, h2)
	if out, q := fromCount(h1.outside, bob), fromCount(h1.mailstore, bob); out != 6+10+10+1 || q != 2+2 {
		t.Fatalf("bob's storm with Redis killed: %d reached the outside, %d quarantined; want 27 (6 shared + 10 per hub + the ordinary message) and 4", out, q)
	}
	if got := bySubject(h1.outside.Messages(), bob, "lunch during the outage"); len(got) != 1 {
		t.Fatalf("ordinary mail during the outage: %d delivered", len(got))
	}
	for _, h := range []*hub{h1, h2} {
		if _, degraded, outages := backendOf(t, h); !degraded || outages != 1 {
			t.Fatalf("%s's daemon during the outage: degraded=%v outages=%d", h.pf.Name(), degraded, outages)
		}
		// 12 of bob's forwards counted locally by each daemon.
		if d, f := redisMetric(t, h, "loopbreaker_state_degraded"), redisMetric(t, h, "loopbreaker_state_fallbacks_total"); d != "1" || f != "12" {
			t.Fatalf("%s's daemon's metrics during the outage: degraded %s, fallbacks %s; want 1 and 12", h.pf.Name(), d, f)
		}
	}
	if !regexpMatch(`Redis unreachable; counting in the local state file`, h1.daemon.Log()) {
		t.Fatalf("hub1's daemon did not log the outage:\n%s", h1.daemon.Log())
	}
	t.Logf("Redis killed mid-storm: all 25 messages accepted, 10 more passed per hub (local limit 10), 2 redirected per hub")

	// 3. Redis back, empty: the local blocks are pushed, the count is shared again.
	if err := rs.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	waitShared(t, ctx, h1, h2)
	for _, h := range []*hub{h1, h2} {
		if d, o := redisMetric(t, h, "loopbreaker_state_degraded"), redisMetric(t, h, "loopbreaker_state_outages_total"); d != "0" || o != "1" {
			t.Fatalf("%s's daemon's metrics after the outage: degraded %s, outages %s; want 0 and 1", h.pf.Name(), d, o)
		}
	}
	out, err = lb(t, h1, "blocks", "-json")
	if err != nil || json.Unmarshal([]byte(out), &bs) != nil || len(bs) != 1 || bs[0].Key != bob || bs[0].Count != 4 {
		t.Fatalf("blocks in Redis after the outage, through hub1's daemon: want bob's, with both daemons' 2+2 messages: %v\n%s", err, out)
	}
	stormOver(t, ctx, carol, 0, 30, h1, h2)
	settle(t, ctx, 61+30, h1, h2)
	if out, q := fromCount(h1.outside, carol), fromCount(h1.mailstore, carol); out != 10 || q != 20 {
		t.Fatalf("carol's storm after Redis came back: %d reached the outside, %d quarantined; want exactly 10 and 20", out, q)
	}
	t.Logf("Redis back: bob's block pushed (4 acted on), carol's storm over two hubs: 10 of 30 passed")
}

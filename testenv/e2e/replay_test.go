package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/state"
	"github.com/loopbreaker/loopbreaker/testenv/scenario"
	"github.com/loopbreaker/loopbreaker/testenv/smtpsink"
)

// replayReport is the part of `loopbreaker replay -json` the test reads.
type replayReport struct {
	Messages int            `json:"messages"`
	Kinds    map[string]int `json:"kinds"`
	Rules    []struct {
		Name   string `json:"name"`
		Hits   int    `json:"hits"`
		Passed int    `json:"passed"`
		Acted  int    `json:"acted"`
		Blocks []struct {
			Rule  string `json:"rule"`
			Key   string `json:"key"`
			Start struct {
				Subject  string `json:"subject"`
				Location string `json:"location"`
				Kind     string `json:"kind"`
			} `json:"start"`
			Action       string `json:"action"`
			Count        int    `json:"count"`
			Limit        int    `json:"limit"`
			PassedBefore int    `json:"passed_before"`
			Acted        int    `json:"acted"`
		} `json:"blocks"`
	} `json:"rules"`
	OrdinaryTouched []json.RawMessage `json:"ordinary_touched"`
}

// TestReplayMatchesTheDaemon runs the forward storm through Postfix and the
// daemon (testenv/scenario, the built-in policy), writes alice's mailbox as
// the run left it (scenario.WriteMailbox: her Sent folder, the forwards her
// rule made, as an mbox, a Maildir and an .eml tree), replays each with
// `loopbreaker replay -json -mailbox outbound`, and checks that replay
// decides what the live daemon decided: one forward-storm block on alice,
// started by the 26th forwarded NDR (the very message the daemon
// redirected to the quarantine mailbox, by Message-ID), 25 let through
// before it, one acted on, and no ordinary message touched.
func TestReplayMatchesTheDaemon(t *testing.T) {
	requirePostfix(t)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	var events []state.Event
	var quarantined []smtpsink.Message
	o := scenario.Options{Scenario: scenario.ForwardStorm, DaemonBin: daemonBin, Dir: t.TempDir(), LoopCap: loopCap, MaxDuration: 60 * time.Second}
	o.AfterStop = func(w *scenario.World, r *scenario.Result) error {
		sock := filepath.Join(filepath.Dir(w.Daemon.State), "admin.sock")
		out, err := exec.Command(daemonBin, "events", "-json", "-n", "1000", "-admin", sock).Output()
		if err != nil {
			return err
		}
		if err := json.Unmarshal(out, &events); err != nil {
			return err
		}
		for _, m := range w.HubStore.Messages() {
			if len(m.To) == 1 && strings.EqualFold(m.To[0], scenario.Quarantine) {
				quarantined = append(quarantined, m)
			}
		}
		return nil
	}
	r, err := scenario.Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if r.Mailbox == nil {
		t.Fatal("the run wrote no mailbox")
	}
	mb := *r.Mailbox
	t.Logf("alice's mailbox: %s (inbox %d, sent %d); replay with:\n  %s", mb.Dir, mb.InboxMessages, mb.SentMessages, strings.Join(mb.ReplayCommands(daemonBin), "\n  "))

	// What the daemon did.
	var started []state.Event
	acted := 0
	for _, e := range events {
		if e.Rule != "forward-storm" {
			continue
		}
		acted++
		if e.NewBlock {
			started = append(started, e)
		}
	}
	if len(started) != 1 || len(quarantined) != 1 {
		t.Fatalf("the daemon started %d forward-storm blocks and quarantined %d messages; want 1 and 1\nevents: %+v", len(started), len(quarantined), events)
	}
	live := started[0]
	liveID := quarantined[0].Header.Get("Message-Id")
	passedLive := 0
	for _, d := range r.Decisions {
		if d.Msg == "pass" && d.Kind == "forwarded-ndr" && strings.EqualFold(d.Sender, scenario.Alice) {
			passedLive++
		}
	}

	t.Run("Inbox", func(t *testing.T) { checkInbox(t, ctx, mb) })
	for _, src := range []string{mb.SentMbox(), mb.SentMaildir(), mb.SentEML()} {
		t.Run(filepath.Base(src), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			cmd := exec.CommandContext(ctx, daemonBin, "replay", "-json", "-q", "-mailbox", "outbound", "-local-domains", scenario.HubDomain, src)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("replay: %v\n%s", err, stderr.String())
			}
			var rep replayReport
			if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
				t.Fatalf("replay -json: %v\n%s", err, stdout.String())
			}
			if rep.Messages != mb.SentMessages {
				t.Errorf("replay read %d messages; the Sent folder has %d", rep.Messages, mb.SentMessages)
			}
			if len(rep.OrdinaryTouched) != 0 {
				t.Errorf("replay touched ordinary mail: %s", rep.OrdinaryTouched)
			}
			var blocks int
			for _, rr := range rep.Rules {
				blocks += len(rr.Blocks)
				if rr.Name != "forward-storm" {
					continue
				}
				if rr.Acted != acted {
					t.Errorf("replay: forward-storm acted on %d messages; the daemon on %d", rr.Acted, acted)
				}
				if len(rr.Blocks) != 1 {
					t.Fatalf("replay: %d forward-storm blocks; the daemon started 1", len(rr.Blocks))
				}
				b := rr.Blocks[0]
				if b.Key != live.Key || b.Count != live.Count || b.Limit != live.Limit || b.Action != live.Action {
					t.Errorf("replay block %s %d/%d %s; the daemon's %s %d/%d %s", b.Key, b.Count, b.Limit, b.Action, live.Key, live.Count, live.Limit, live.Action)
				}
				if b.Count != 26 || b.PassedBefore != 25 || b.PassedBefore != passedLive {
					t.Errorf("replay: the block started at count %d after %d passed; the daemon let %d through; want the 26th after 25", b.Count, b.PassedBefore, passedLive)
				}
				if b.Start.Subject != live.Subject || b.Start.Kind != live.Kind {
					t.Errorf("replay block start %q (%s); the daemon's %q (%s)", b.Start.Subject, b.Start.Kind, live.Subject, live.Kind)
				}
				if id := messageID(t, b.Start.Location); id != liveID {
					t.Errorf("replay's block starts at %s, Message-ID %s; the daemon quarantined %s", b.Start.Location, id, liveID)
				}
			}
			if blocks != 1 {
				t.Errorf("replay started %d blocks in all; the daemon 1", blocks)
			}
		})
	}
}

// TestReplayMatchesTheDaemon's inbox check: alice's Inbox, as the
// mailstore's local delivery wrote it, replays as inbound mail: every
// message is read with its envelope from Return-Path and X-Original-To.
func checkInbox(t *testing.T, ctx context.Context, mb scenario.Mailbox) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, daemonBin, "replay", "-json", "-q", "-local-domains", scenario.HubDomain, mb.InboxMaildir(), mb.InboxMbox(), mb.InboxEML())
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("replay: %v\n%s", err, stderr.String())
	}
	var rep replayReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Messages != 3*mb.InboxMessages || rep.Kinds["bounce"] == 0 {
		t.Errorf("inbox replay: %d messages, kinds %v; want %d, bounces among them", rep.Messages, rep.Kinds, 3*mb.InboxMessages)
	}
	for _, rr := range rep.Rules {
		for _, b := range rr.Blocks {
			t.Logf("inbox replay (three copies of each message): block %s %s at %d/%d, start %q", b.Rule, b.Key, b.Count, b.Limit, b.Start.Subject)
		}
	}
}

// messageID reads the Message-ID of the message at a replay location: a
// file, or an mbox file and the byte offset of its "From " line.
func messageID(t *testing.T, loc string) string {
	t.Helper()
	path, off := loc, int64(-1)
	if i := strings.LastIndexByte(loc, '@'); i > 0 && !strings.Contains(loc[i:], "/") {
		var n int64
		for _, c := range loc[i+1:] {
			n = n*10 + int64(c-'0')
		}
		path, off = loc[:i], n
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if off >= 0 {
		data = data[off:]
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data = data[i+1:]
		}
	}
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", loc, err)
	}
	return m.Header.Get("Message-Id")
}

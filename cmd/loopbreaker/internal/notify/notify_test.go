package notify

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/loopdetect/classify"
	"github.com/loopbreaker/loopbreaker/loopdetect/engine"
	"github.com/loopbreaker/loopbreaker/loopdetect/policy"
	"github.com/loopbreaker/loopbreaker/state"
	"github.com/loopbreaker/loopbreaker/testenv/smtpsink"
	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

func TestOneMailPerBlockRateLimitedWithSummary(t *testing.T) {
	sink := smtpsink.MustStart(t, "relay")
	p := policy.Default()
	p.AdminAddress = "postmaster@corp.example"
	p.AdminRelay = sink.Addr()
	p.AdminMailsPerHour = 2
	p.QuarantineMailbox = "quarantine@corp.example"
	var now atomic.Int64
	now.Store(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC).UnixNano())
	n := (&Notifier{
		Policy: func() *policy.Policy { return p },
		Block: func(rule, key string) (state.Block, bool) {
			return state.Block{Rule: rule, Key: key, Count: 3, Samples: []string{"FW: Mail delivery failed"}}, true
		},
		Log:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Delay: -1,
		Now:   func() time.Time { return time.Unix(0, now.Load()) },
	}).Start()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.Run(ctx)

	block := func(key string, newBlock bool) {
		n.Decided(&engine.Decision{Verdict: classify.Verdict{Kind: classify.KindForwardedNDR}, Action: policy.ActionRedirect,
			Rule: "forward-storm", Key: key, Count: 26, Limit: 25, Window: 15 * time.Minute, NewBlock: newBlock}, 0)
	}
	block("alice@corp.example", true)
	block("alice@corp.example", false) // acted on, but not a new block: no mail
	block("bob@corp.example", true)
	block("carol@corp.example", true) // third in the hour: held for the summary
	block("dave o'hara@corp.example", true)
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	if err := sink.WaitCount(wctx, 2); err != nil {
		t.Fatal(err)
	}
	m := sink.Messages()[0]
	if m.From != "" || len(m.To) != 1 || m.To[0] != "postmaster@corp.example" {
		t.Fatalf("envelope %q -> %v", m.From, m.To)
	}
	if m.Header.Get("Auto-Submitted") != "auto-generated" || !strings.Contains(m.Subject, "alice@corp.example") {
		t.Fatalf("header: %v", m.Header)
	}
	body := string(m.Data)
	for _, want := range []string{"Rule:      forward-storm", "Limit:     25 per 15m0s", "FW: Mail delivery failed", "loopbreaker release alice@corp.example -rule forward-storm", "went to quarantine@corp.example"} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
	// Wait until carol's and dave's notices are taken (and held), then an
	// hour later the next block first sends the summary of the two held.
	if err := testproc.Poll(wctx, "four notices handled", func(context.Context) error {
		if h := n.handled.Load(); h < 4 {
			return fmt.Errorf("%d handled", h)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := sink.Count(); got != 2 {
		t.Fatalf("%d mails within the first hour, want 2", got)
	}
	now.Add(int64(time.Hour))
	block("erin@corp.example", true)
	if err := sink.WaitCount(wctx, 4); err != nil {
		t.Fatal(err)
	}
	msgs := sink.Messages()
	sum := string(msgs[2].Data)
	if !strings.Contains(msgs[2].Subject, "2 more blocks") || !strings.Contains(sum, "carol@corp.example") || !strings.Contains(sum, "dave o'hara@corp.example") {
		t.Fatalf("summary: %s\n%s", msgs[2].Subject, sum)
	}
	if !strings.Contains(msgs[3].Subject, "erin@corp.example") {
		t.Fatalf("after the summary: %s", msgs[3].Subject)
	}
	if got := sink.Count(); got != 4 {
		t.Fatalf("%d mails, want 4", got)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{"alice@corp.example": "alice@corp.example", "/run/x y/admin.sock": "'/run/x y/admin.sock'", "/var/lib/lb/admin.sock": "/var/lib/lb/admin.sock", "a b": "'a b'", "o'h": `'o'\''h'`, "": "''"} {
		if got := ShellQuote(in); got != want {
			t.Errorf("ShellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestReleaseCommand(t *testing.T) {
	if got, want := ReleaseCommand("o'h@x", "r", ""), `loopbreaker release 'o'\''h@x' -rule r`; got != want {
		t.Errorf("%s, want %s", got, want)
	}
	if got, want := ReleaseCommand("a@x", "r", "-admin /srv/admin.sock"), "loopbreaker release a@x -rule r -admin /srv/admin.sock"; got != want {
		t.Errorf("%s, want %s", got, want)
	}
}

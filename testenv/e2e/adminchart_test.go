package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// artifactDir is where a test leaves files for a person to look at:
// $LOOPBREAKER_TEST_ARTIFACTS when set, else the test's temporary directory.
func artifactDir(t *testing.T) string {
	if d := os.Getenv("LOOPBREAKER_TEST_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err == nil {
			return d
		}
	}
	return t.TempDir()
}

// TestAdminPageTimeline drives the admin page's live chart in headless
// Chromium: two forward storms (alice's, bob's) through Postfix start two
// blocks; the chart (GET /v1/timeline, drawn as inline SVG) shows the
// storms' messages as forwarded-ndr bars and one span per block, with no
// console error. A further storm message, sent while the page is open,
// shows up at the next refresh. The screenshot is admin-timeline.png in
// the artifact directory.
func TestAdminPageTimeline(t *testing.T) {
	requirePostfix(t)
	browser, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("admin page test: no chromium on PATH (make deps installs Debian's chromium package)")
	}
	const token = "test-token-0123456789abcdef"
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)
	adminAddr := freeLoopbackAddr(t)
	h := startHub(t, "-policy", policyFile(t, "3", "redirect"), "-admin-tcp", adminAddr, "-admin-token-file", tokenFile)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const alice, bob, typo = "alice@corp.example", "bob@corp.example", "nobody@outside.example"
	for i := 0; i < 6; i++ {
		send(t, ctx, h, alice, []string{typo}, forwardedNDR(alice, typo, i))
		send(t, ctx, h, bob, []string{typo}, forwardedNDR(bob, typo, i))
	}
	send(t, ctx, h, alice, []string{"friend@outside.example"}, ordinary(alice, "friend@outside.example", "lunch"))

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("headless", "new"), chromedp.WindowSize(1200, 1000))
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	var mu sync.Mutex
	var problems []string
	listen := func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError {
				problems = append(problems, "console.error")
			}
		case *runtime.EventExceptionThrown:
			problems = append(problems, "exception: "+e.ExceptionDetails.Text)
		case *log.EventEntryAdded:
			if e.Entry.Level == log.EntryLevelError {
				problems = append(problems, "log: "+e.Entry.Text)
			}
		}
	}
	bctx, bcancel := chromedp.NewContext(actx, chromedp.WithListener(listen))
	defer bcancel()
	err = chromedp.Do(bctx,
		chromedp.Navigate("http://"+adminAddr+"/#token="+token),
		chromedp.WaitVisible(`#timeline rect.bar`),
	)
	if err != nil {
		t.Fatalf("page: %v", err)
	}
	count := func(js string) int {
		t.Helper()
		n, err := chromedp.Run(bctx, chromedp.Evaluate[int](js))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Sum of the bars' counts, read from their titles ("HH:MM: N kind").
	const sumOf = `(function (kind) { var n = 0; document.querySelectorAll('#timeline rect.bar[data-kind="' + kind + '"] title').forEach(function (t) { n += parseInt(t.textContent.split(': ')[1], 10); }); return n; })`
	if spans := count(`document.querySelectorAll('#timeline rect[data-block-rule="forward-storm"]').length`); spans != 2 {
		t.Errorf("the chart shows %d forward-storm block spans; want 2", spans)
	}
	if n := count(sumOf + `("forwarded-ndr")`); n != 12 {
		t.Errorf("the bars count %d forwarded-ndr messages; want 12", n)
	}
	if n := count(sumOf + `("ordinary")`); n != 1 {
		t.Errorf("the bars count %d ordinary messages; want 1", n)
	}
	for _, key := range []string{alice, bob} {
		if n := count(`document.querySelectorAll('#timeline rect[data-block-key="` + key + `"]').length`); n != 1 {
			t.Errorf("%d spans for %s; want 1", n, key)
		}
	}

	// Live: the page's refresh picks up the next message.
	send(t, ctx, h, alice, []string{typo}, forwardedNDR(alice, typo, 99))
	deadline := time.Now().Add(15 * time.Second)
	for count(sumOf+`("forwarded-ndr")`) != 13 {
		if time.Now().After(deadline) {
			t.Fatalf("the chart did not refresh: %d forwarded-ndr messages; want 13", count(sumOf+`("forwarded-ndr")`))
		}
		time.Sleep(500 * time.Millisecond)
	}

	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	shotPath := filepath.Join(artifactDir(t), "admin-timeline.png")
	if err := os.WriteFile(shotPath, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", shotPath, len(shot))
	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Errorf("console: %v", problems)
	}
}

package replay

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
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

// twoStorms is alice's storm twice, two hours apart (the first block has
// ended by the second): two forward-storm blocks.
func twoStorms() []testMsg {
	msgs := stormMailbox(20*time.Second, true)
	for _, m := range stormMailbox(20*time.Second, true) {
		m.at = m.at.Add(2 * time.Hour)
		date := m.at.Format(time.RFC1123Z)
		for i, f := range m.fields {
			switch f[0] {
			case "Received":
				m.fields[i][1] = f[1][:strings.LastIndexByte(f[1], ';')+1] + " " + date
			case "Date":
				m.fields[i][1] = date
			}
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// TestReplayHTML renders the HTML report of a known mailbox in headless
// Chromium: the page loads with no console error, fetches nothing, and its
// chart has one block span per block.
func TestReplayHTML(t *testing.T) {
	mbox := filepath.Join(t.TempDir(), "two-storms.mbox")
	writeMbox(t, mbox, twoStorms(), true)
	rep := replayOrFail(t, Config{}, mbox)
	if n := len(ruleReport(t, rep, "forward-storm").Blocks); n != 2 {
		t.Fatalf("forward-storm blocks: %d; want 2", n)
	}
	var page bytes.Buffer
	if err := rep.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	if fetch := regexp.MustCompile(`(?i)(src|href)\s*=\s*"(https?:)?//`).Find(page.Bytes()); fetch != nil {
		t.Errorf("the page fetches %s", fetch)
	}
	if got := strings.Count(page.String(), `data-block-rule="forward-storm"`); got != 2 {
		t.Errorf("%d forward-storm spans in the HTML; want 2", got)
	}
	dir := artifactDir(t)
	htmlPath := filepath.Join(dir, "replay-report.html")
	if err := os.WriteFile(htmlPath, page.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	browser, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("replay HTML in a browser: no chromium on PATH (make deps installs Debian's chromium package)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("headless", "new"), chromedp.WindowSize(1200, 1400))
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
	if err := chromedp.Do(bctx, chromedp.Navigate("file://"+htmlPath), chromedp.WaitVisible(`#timeline`)); err != nil {
		t.Fatalf("page: %v", err)
	}
	spans, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll('#timeline rect[data-block-rule]').length`))
	if err != nil {
		t.Fatal(err)
	}
	if spans != 2 {
		t.Errorf("the chart shows %d block spans; want 2", spans)
	}
	bars, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll('#timeline g.bars rect').length`))
	if err != nil || bars == 0 {
		t.Errorf("the chart has %d bars (%v)", bars, err)
	}
	// The checkbox of a rule hides its spans.
	hidden, err := chromedp.Run(bctx, chromedp.Evaluate[int](`(function () {
		var box = document.querySelector('input[data-toggle-rule="forward-storm"]');
		box.click();
		return document.querySelectorAll('rect.span.off').length;
	})()`))
	if err != nil || hidden != 2 {
		t.Errorf("unticking forward-storm hid %d spans (%v); want 2", hidden, err)
	}
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelector('input[data-toggle-rule="forward-storm"]').click(), 0`)); err != nil {
		t.Fatal(err)
	}
	touched, err := chromedp.Run(bctx, chromedp.Text(`#ordinary-touched`))
	if err != nil || touched != "0" {
		t.Errorf("ordinary touched shows %q (%v)", touched, err)
	}
	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	shotPath := filepath.Join(dir, "replay-report.png")
	if err := os.WriteFile(shotPath, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes); page: %s", shotPath, len(shot), htmlPath)
	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Errorf("console: %v", problems)
	}
}

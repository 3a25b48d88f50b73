package replay

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/loopbreaker/loopbreaker/testenv/browser"
)

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
	dir := browser.ArtifactDir(t)
	htmlPath := filepath.Join(dir, "replay-report.html")
	if err := os.WriteFile(htmlPath, page.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tab := browser.Open(t, ctx, 1200, 1400)
	bctx := tab.Ctx
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
	if _, err := tab.Screenshot(t, "replay-report.png"); err != nil {
		t.Fatal(err)
	}
	t.Logf("page: %s", htmlPath)
	if problems := tab.Problems(); len(problems) > 0 {
		t.Errorf("console: %v", problems)
	}
}

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/loopbreaker/loopbreaker/testenv/browser"
	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// TestAdminPageTimeline drives the admin page's live chart in headless
// Chromium: two forward storms (alice's, bob's) through Postfix start two
// blocks; the chart (GET /v1/timeline, drawn as inline SVG) shows the
// storms' messages as forwarded-ndr bars and one span per block, with no
// console error. A further storm message, sent while the page is open,
// shows up at the next refresh. The screenshot is admin-timeline.png in
// the artifact directory.
func TestAdminPageTimeline(t *testing.T) {
	requirePostfix(t)
	h, adminAddr := startAdminHub(t, "3", "redirect")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const alice, bob, typo = "alice@corp.example", "bob@corp.example", "nobody@outside.example"
	for i := 0; i < 6; i++ {
		send(t, ctx, h, alice, []string{typo}, forwardedNDR(alice, typo, i))
		send(t, ctx, h, bob, []string{typo}, forwardedNDR(bob, typo, i))
	}
	send(t, ctx, h, alice, []string{"friend@outside.example"}, ordinary(alice, "friend@outside.example", "lunch"))

	page := browser.Open(t, ctx, 1200, 1000)
	bctx := page.Ctx
	err := chromedp.Do(bctx,
		chromedp.Navigate(adminPage(adminAddr)),
		chromedp.WaitVisible(`#timeline rect.bar`),
	)
	if err != nil {
		t.Fatalf("page: %v", err)
	}
	count := func(js string) int { t.Helper(); return page.Int(t, js) }
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
	refresh, cancelRefresh := context.WithTimeout(ctx, 15*time.Second)
	defer cancelRefresh()
	if err := testproc.Poll(refresh, "the chart's refresh", func(context.Context) error {
		if n := count(sumOf + `("forwarded-ndr")`); n != 13 {
			return fmt.Errorf("%d forwarded-ndr messages; want 13", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	if _, err := page.Screenshot(t, "admin-timeline.png"); err != nil {
		t.Fatal(err)
	}
	if problems := page.Problems(); len(problems) > 0 {
		t.Errorf("console: %v", problems)
	}
}

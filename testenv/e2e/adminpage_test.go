package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/loopbreaker/loopbreaker/testenv/browser"
)

// TestAdminPageReleasesABlock drives the admin page in headless Chromium
// (Debian's chromium package): the page shows the storm's block and the
// recent decisions; its Release button lifts the block.
func TestAdminPageReleasesABlock(t *testing.T) {
	requirePostfix(t)
	h, adminAddr := startAdminHub(t, "2", "redirect")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const alice, typo = "alice@corp.example", "nobody@outside.example"
	for i := 0; i < 4; i++ {
		send(t, ctx, h, alice, []string{typo}, forwardedNDR(alice, typo, i))
	}

	// The API on TCP refuses requests without the token.
	resp, err := http.Get("http://" + adminAddr + "/v1/blocks")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("API without a token: %s", resp.Status)
	}

	tab := browser.Open(t, ctx, 0, 0)
	bctx := tab.Ctx

	err = chromedp.Do(bctx,
		chromedp.Navigate(adminPage(adminAddr)),
		chromedp.WaitVisible(`#blocks tbody tr button.release`),
	)
	if err != nil {
		t.Fatalf("page: %v", err)
	}
	blocksText, err := chromedp.Run(bctx, chromedp.Text(`#blocks tbody`))
	if err != nil {
		t.Fatal(err)
	}
	eventsText, err := chromedp.Run(bctx, chromedp.Text(`#events tbody`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tab.Screenshot(t, "admin-page.png"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(blocksText, "forward-storm") || !strings.Contains(blocksText, alice) || !strings.Contains(blocksText, stormSubj) {
		t.Fatalf("blocks table: %q", blocksText)
	}
	if strings.Count(eventsText, "redirect") != 2 {
		t.Fatalf("events table: %q", eventsText)
	}
	err = chromedp.Do(bctx,
		chromedp.Click(`#blocks tbody tr button.release`),
		chromedp.WaitVisible(`#no-blocks`),
	)
	if err != nil {
		t.Fatalf("release through the page: %v", err)
	}
	if out, err := lb(t, h, "blocks", "-json"); err != nil || strings.TrimSpace(out) != "[]" {
		t.Fatalf("blocks after the page's release: %v %s", err, out)
	}
	if out, _ := lb(t, h, "events"); !strings.Contains(out, "release") {
		t.Fatalf("the release is not in the audit trail:\n%s", out)
	}
}

// Package browser drives headless Chromium (Debian's chromium package)
// for the tests of the pages loopbreaker serves or writes: the admin page
// (testenv/e2e) and the replay HTML report (cmd/loopbreaker/internal/replay).
// A Page records the console errors, uncaught exceptions and error log
// entries the page produced, so that a test can insist there were none,
// and writes screenshots into the artifact directory.
package browser

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// ArtifactsEnv names the directory where tests leave files for a person to
// look at (screenshots, the pages they rendered).
const ArtifactsEnv = "LOOPBREAKER_TEST_ARTIFACTS"

// ArtifactDir is $LOOPBREAKER_TEST_ARTIFACTS (made when missing), else the
// test's temporary directory.
func ArtifactDir(tb testing.TB) string {
	if d := os.Getenv(ArtifactsEnv); d != "" {
		if err := os.MkdirAll(d, 0o755); err == nil {
			return d
		}
	}
	return tb.TempDir()
}

// Page is one tab of a headless Chromium the test started. Ctx is the
// chromedp context to run actions in.
type Page struct {
	Ctx context.Context

	mu       sync.Mutex
	problems []string
}

// Open starts headless Chromium with a window of width×height pixels (0:
// chromedp's default) and opens a tab, both ending with ctx or the test.
// It skips the test when there is no chromium on PATH.
func Open(tb testing.TB, ctx context.Context, width, height int) *Page {
	tb.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		tb.Skip("skipping: no chromium on PATH (make deps installs Debian's chromium package)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("headless", "new"))
	if width > 0 && height > 0 {
		opts = append(opts, chromedp.WindowSize(width, height))
	}
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	p := &Page{}
	bctx, bcancel := chromedp.NewContext(actx, chromedp.WithListener(p.listen))
	tb.Cleanup(func() {
		bcancel()
		acancel()
	})
	p.Ctx = bctx
	return p
}

// listen records the page's errors.
func (p *Page) listen(ev any) {
	var problem string
	switch e := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if e.Type == runtime.ConsoleAPICalledTypeError {
			problem = "console.error"
		}
	case *runtime.EventExceptionThrown:
		problem = "exception: " + e.ExceptionDetails.Text
	case *log.EventEntryAdded:
		if e.Entry.Level == log.EntryLevelError {
			problem = "log: " + e.Entry.Text
		}
	}
	if problem != "" {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.problems = append(p.problems, problem)
	}
}

// Problems are the console errors, uncaught exceptions and error log
// entries of the page so far.
func (p *Page) Problems() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.problems...)
}

// Int evaluates the JavaScript expression js, whose value is a number,
// failing the test on an error.
func (p *Page) Int(tb testing.TB, js string) int {
	tb.Helper()
	n, err := chromedp.Run(p.Ctx, chromedp.Evaluate[int](js))
	if err != nil {
		tb.Fatalf("evaluating %s: %v", js, err)
	}
	return n
}

// Screenshot writes a screenshot of the whole page as name (a .png) into
// the artifact directory and returns its path.
func (p *Page) Screenshot(tb testing.TB, name string) (string, error) {
	shot, err := chromedp.Run(p.Ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return "", fmt.Errorf("screenshot %s: %w", name, err)
	}
	path := filepath.Join(ArtifactDir(tb), name)
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		return "", fmt.Errorf("screenshot %s: %w", name, err)
	}
	tb.Logf("screenshot: %s (%d bytes)", path, len(shot))
	return path, nil
}

package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv"
)

// TestConcurrentStormPassesExactlyLimit: 16 SMTP sessions at once feed one
// sender's storm through Postfix; exactly the limit reaches the outside.
func TestConcurrentStormPassesExactlyLimit(t *testing.T) {
	requirePostfix(t)
	h := startHub(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const alice, typo, sessions, each = "alice@corp.example", "nobody@outside.example", 16, 5
	var wg sync.WaitGroup
	errs := make(chan error, sessions*each)
	for s := 0; s < sessions; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				n := s*each + i
				if err := testenv.SendMail(ctx, h.pf.SMTPAddr(), alice, []string{typo}, forwardedNDR(alice, typo, n)); err != nil {
					errs <- fmt.Errorf("message %d: %w", n, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := sessions * each
	h.settle(t, ctx, 25, total-25)
	if out, q := h.outside.Count(), h.mailstore.Count(); out != 25 || q != total-25 {
		t.Fatalf("outside %d, quarantine %d; want exactly 25 and %d", out, q, total-25)
	}
}

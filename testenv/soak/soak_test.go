package soak

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv/postfix"
)

// TestShortSoak is the soak in small (`make soak` runs the 30-minute one):
// LB_SOAK=60s go test ./testenv/soak runs one minute of mixed mail through
// Postfix and the daemon at 80 % of what Postfix alone sustains, and fails
// when a message is unaccounted for or goroutines grew. Skipped unless
// LB_SOAK is set, so `make test` does not pay for it.
func TestShortSoak(t *testing.T) {
	v := os.Getenv("LB_SOAK")
	if v == "" {
		t.Skip("set LB_SOAK=60s to run a short soak (make soak runs 30 minutes)")
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("LB_SOAK=%q: %v", v, err)
	}
	postfix.SkipIfUnavailable(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	res, err := Run(t.Context(), Config{Duration: d, Baseline: 20 * time.Second, Sample: 10 * time.Second, Dir: dir}, tlog{t})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Report(tlog{t}) {
		t.Fatal("soak failed (see above)")
	}
	if res.Sent[Ordinary] == 0 || res.Quarantined[Forward] == 0 || res.Rejected[Bounce] == 0 || res.Held == 0 {
		t.Fatalf("the mix did not exercise every fate: %+v", res)
	}
}

type tlog struct{ t *testing.T }

func (l tlog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

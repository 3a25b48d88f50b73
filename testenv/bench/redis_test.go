package bench

import (
	"io"
	"strings"
	"testing"

	"github.com/loopbreaker/loopbreaker/testenv/redisserver"
)

// TestRedisSectionRuns runs the Redis section with tiny counts: every row
// is measured, the Redis daemon acts on the storm, and the storms split
// over two daemons sharing Redis pass exactly the limit.
func TestRedisSectionRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs loopbreaker daemons: skipped in -short mode")
	}
	if err := redisserver.Available(); err != nil {
		t.Skipf("skipping: needs a real Redis: %v", err)
	}
	dir := t.TempDir()
	bin, err := Build(t.Context(), dir, "./cmd/loopbreaker")
	if err != nil {
		t.Fatal(err)
	}
	cfg := RedisConfig{Bin: bin, Dir: dir, Rounds: 2, Hits: 200, Messages: 40, Conc: []int{1, 4}, Storms: 2}
	res, err := RunRedis(t.Context(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.State) != 2 || len(res.Daemon) != 4 {
		t.Fatalf("%d state rows, %d daemon rows; want 2 and 4", len(res.State), len(res.Daemon))
	}
	for _, r := range append(res.State, res.Daemon...) {
		if len(r.Ratios) != 2 || r.Ratios[0] <= 0 {
			t.Errorf("%s c=%d: ratios %v", r.What, r.Conc, r.Ratios)
		}
	}
	if storm := res.Daemon[2]; storm.What != "storm" || storm.Outcomes[Redirected] != 80 {
		t.Errorf("storm row: %+v", storm)
	}
	if res.Sent != 128 || res.Passed != 2*StormLimit || res.Beyond != 0 {
		t.Errorf("split storms: %d sent, %d passed, %d beyond; want 128, %d, 0", res.Sent, res.Passed, res.Beyond, 2*StormLimit)
	}
	var out strings.Builder
	WriteRedisTables(&out, res)
	if !strings.Contains(out.String(), "| storm | 4 |") || !strings.Contains(out.String(), "| 2 | 16 × 4 | 128 | 50 | **0** |") {
		t.Errorf("tables:\n%s", out.String())
	}
}

package replay

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// benchMailbox is a day of a busy inbox: ordinary mail from 200 senders to
// 50 local recipients every 10 seconds, and every 1,000 messages a storm
// of 60 forwarded NDRs of alice's (each crosses the limit of 25).
func benchMailbox(n int) []testMsg {
	msgs := make([]testMsg, 0, n)
	for i := 0; i < n; i++ {
		at := stormStart.Add(time.Duration(i) * 10 * time.Second)
		if i%1000 < 60 {
			msgs = append(msgs, forwardedNDR(i, at, true))
			continue
		}
		m := ordinaryMsg(i, at, fmt.Sprintf("user%d@corp.example", i%50), true)
		m.fields[0][1] = fmt.Sprintf("<sender%d@example.org>", i%200)
		msgs = append(msgs, m)
	}
	return msgs
}

// BenchmarkReplay replays a generated mbox of 5,000 messages (ordinary
// mail and forwarded-NDR storms) with the built-in policy, on one
// goroutine, and reports messages per second.
func BenchmarkReplay(b *testing.B) {
	const n = 5000
	p := filepath.Join(b.TempDir(), "bench.mbox")
	writeMbox(b, p, benchMailbox(n), true)
	cfg := Config{Policy: corpPolicy(), TempDir: b.TempDir()}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		rep := replayOrFail(b, cfg, p)
		if fs := ruleReport(b, rep, "forward-storm"); rep.Messages != n || len(rep.OrdinaryTouched) != 0 || len(fs.Blocks) != 5 {
			b.Fatalf("messages %d, ordinary touched %d, forward-storm blocks %d", rep.Messages, len(rep.OrdinaryTouched), len(fs.Blocks))
		}
	}
	b.ReportMetric(float64(n*b.N)/time.Since(start).Seconds(), "msgs/s")
}

package bench

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gomilter "github.com/d--j/go-milter"

	"github.com/loopbreaker/loopbreaker/loopdetect/engine"
	"github.com/loopbreaker/loopbreaker/loopdetect/policy"
	"github.com/loopbreaker/loopbreaker/milter"
	"github.com/loopbreaker/loopbreaker/state"
	"github.com/loopbreaker/loopbreaker/testenv/postfix"
	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// The tests here only check that the benchmark code runs and measures what
// it claims, with tiny counts; they assert nothing about speed.

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testPolicy() *policy.Policy {
	p := policy.Default()
	p.Apply(policy.Overrides{LocalDomains: []string{LocalDomain}, QuarantineMailbox: QuarantineMailbox})
	return p
}

// startLoopbreaker runs loopbreaker's milter server in this process.
func startLoopbreaker(tb testing.TB) *Target {
	tb.Helper()
	st, err := state.Open(filepath.Join(tb.TempDir(), "state.db"), state.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	srv := milter.NewServer(engine.New(testPolicy(), st, quietLog()), quietLog(), milter.Options{})
	tb.Cleanup(func() { st.Close() }) // after the server's shutdown: cleanups run last first
	return serveLoopback(tb, "loopbreaker", srv)
}

// startPassThrough runs the pass-through milter in this process.
func startPassThrough(tb testing.TB) *Target {
	tb.Helper()
	return serveLoopback(tb, "pass-through", closedIsDone{NewPassThrough()})
}

// serveLoopback serves srv on a loopback port until the end of the test.
func serveLoopback(tb testing.TB, name string, srv testproc.Server) *Target {
	tb.Helper()
	return &Target{Name: name, Addr: testproc.ServeLoopback(tb, srv)}
}

// closedIsDone is a go-milter server whose Serve returns nil, not
// ErrServerClosed, after Shutdown, as testproc.ServeLoopback expects.
type closedIsDone struct{ *gomilter.Server }

func (s closedIsDone) Serve(ln net.Listener) error {
	if err := s.Server.Serve(ln); !errors.Is(err, gomilter.ErrServerClosed) {
		return err
	}
	return nil
}

func TestProtocolSectionRuns(t *testing.T) {
	lb, pt := startLoopbreaker(t), startPassThrough(t)
	var out strings.Builder
	rows, err := RunProtocol(t.Context(), lb, pt, ProtocolConfig{Rounds: 2, Messages: 40, Conc: []int{1, 4}}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 {
		t.Fatalf("%d rows, want 4", len(rows))
	}
	for _, r := range rows {
		if r.LB.Messages != 80 || r.PT.Messages != 80 || len(r.Ratios) != 2 {
			t.Errorf("%s c=%d: %d/%d messages, %d ratios", r.Mail, r.Conc, r.LB.Messages, r.PT.Messages, len(r.Ratios))
		}
		if r.PT.Outcomes[Passed] != 80 {
			t.Errorf("the pass-through did not pass everything: %v", r.PT.Outcomes)
		}
	}
	WriteProtocolTable(&out, rows)
	if !strings.Contains(out.String(), "| storm | 4 |") {
		t.Errorf("table:\n%s", out.String())
	}
}

func TestContainmentSectionRuns(t *testing.T) {
	lb := startLoopbreaker(t)
	cfg := ContainmentConfig{Trials: 2, Sessions: 4, PerSess: 9}
	ts, err := RunContainment(t.Context(), lb, cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range ts {
		if tr.Sent != 36 || tr.Passed+tr.Beyond < StormLimit {
			t.Errorf("trial %+v", tr)
		}
	}
	var out strings.Builder
	WriteContainmentTable(&out, cfg, ts)
	if !strings.Contains(out.String(), "| 2 | 4 × 9 | 72 |") {
		t.Errorf("table:\n%s", out.String())
	}
}

func TestScaleMeasures(t *testing.T) {
	dir := t.TempDir()
	r, err := MeasureScale(dir, 300)
	if err != nil {
		t.Fatal(err)
	}
	l, err := MeasureLoad(dir, 300)
	if err != nil {
		t.Fatal(err)
	}
	if r.Keys != 300 || r.HitNs <= 0 || r.DecideNs <= 0 || r.FileBytes <= 0 || l.LoadRSS <= 0 {
		t.Fatalf("%+v %+v", r, l)
	}
	var out strings.Builder
	WriteScaleTable(&out, []*ScaleResult{r})
	if !strings.Contains(out.String(), "| 300 |") {
		t.Errorf("table:\n%s", out.String())
	}
}

func TestPostfixSectionRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a private Postfix")
	}
	postfix.SkipIfUnavailable(t)
	for _, p := range []string{SMTPSourceCmd, SMTPSinkCmd} {
		if _, err := os.Stat(p); err != nil {
			t.Skip(err)
		}
	}
	lb, pt := startLoopbreaker(t), startPassThrough(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	res, err := RunPostfix(t.Context(), lb, pt, PostfixConfig{Rounds: 1, Messages: 10, Sessions: 2, Dir: dir}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	WritePostfixTable(&out, res)
	for _, c := range res.Cells {
		if len(c.EndToEnd) != 1 || c.EndToEnd[0] <= 0 {
			t.Errorf("%s: %v", c.Name, c.EndToEnd)
		}
	}
	if !strings.Contains(out.String(), "| loopbreaker |") {
		t.Errorf("table:\n%s", out.String())
	}
}

// Benchmarks for profiling the decision path in-process (the daemon has no
// pprof endpoint), e.g.
//
//	go test -run XXX -bench Decide -cpuprofile cpu.out ./testenv/bench
//	go tool pprof -top cpu.out

func benchEngine(b *testing.B) *engine.Engine {
	st, err := state.Open(filepath.Join(b.TempDir(), "state.db"), state.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return engine.New(testPolicy(), st, quietLog())
}

func BenchmarkDecideOrdinary(b *testing.B) {
	eng := benchEngine(b)
	msgs := make([]*Mail, 64)
	for i := range msgs {
		msgs[i] = Ordinary(i)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		eng.Decide(context.Background(), MessageOf(msgs[i%len(msgs)]))
	}
}

func BenchmarkDecideStorm(b *testing.B) {
	eng := benchEngine(b)
	m := Storm("storm@"+LocalDomain, 1)
	b.ReportAllocs()
	for b.Loop() {
		eng.Decide(context.Background(), MessageOf(m))
	}
}

// BenchmarkMilterSession is one whole milter conversation per iteration
// against loopbreaker's server in this process (client time included).
func BenchmarkMilterSession(b *testing.B) {
	lb := startLoopbreaker(b)
	client := NewPostfixLikeClient(lb.Addr)
	macros := postfixMacros()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := sendOne(client, macros, Ordinary(i), i); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUnfold compares building a strings.Replacer per folded header
// value (as milter.unfold does) with one shared replacer.
func BenchmarkUnfold(b *testing.B) {
	v := Ordinary(1).Header[0][1] // a folded Received field
	b.Run("NewReplacerPerValue", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = strings.NewReplacer("\r\n", "", "\n", "", "\r", "").Replace(v)
		}
	})
	b.Run("SharedReplacer", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = unfolder.Replace(v)
		}
	})
}

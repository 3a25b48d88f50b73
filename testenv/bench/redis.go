package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/loopbreaker/loopbreaker/state"
	"github.com/loopbreaker/loopbreaker/state/redisstore"
	"github.com/loopbreaker/loopbreaker/testenv/redisserver"
	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// RedisConfig sizes the Redis section: the shared state backend beside
// the embedded bbolt one.
type RedisConfig struct {
	Bin      string // the loopbreaker binary
	Dir      string // a work directory
	Rounds   int    // alternating rounds per cell
	Hits     int    // state: Hits per round and store
	Messages int    // daemon: messages per round and daemon
	Conc     []int  // concurrent callers (goroutines, milter sessions)
	Storms   int    // storms split over two daemons sharing Redis
}

// RedisRow is one cell: the Redis backend against bbolt.
type RedisRow struct {
	What         string // "Hit" or a mail kind
	Conc         int
	Redis, BBolt []float64 // operations/s per round
	Ratios       []float64 // Redis/bbolt per round
	// CPU per operation: the daemon's, and redis-server's (daemon rows).
	RedisCPU, BBoltCPU, ServerCPU time.Duration
	Outcomes                      [numOutcomes]int // Redis daemon's
}

// RedisResult is the section's numbers.
type RedisResult struct {
	Version string
	State   []RedisRow
	Daemon  []RedisRow
	// Split storms: two daemons sharing Redis, half the sessions each.
	Storms, Sessions, PerSess int
	Sent, Passed, Beyond      int
}

// RunRedis starts a redis-server, measures state.Store.Hit against
// redisstore.Redis.Hit in this process, then a loopbreaker daemon on bbolt
// against one on Redis through the bare milter protocol, in alternating
// rounds; and last, storms split over two daemons that share Redis.
func RunRedis(ctx context.Context, cfg RedisConfig, progress io.Writer) (*RedisResult, error) {
	if err := redisserver.Available(); err != nil {
		return nil, err
	}
	rdir := filepath.Join(cfg.Dir, "redis")
	if err := os.MkdirAll(rdir, 0o755); err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	srv, err := redisserver.Start(sctx, rdir)
	cancel()
	if err != nil {
		return nil, err
	}
	defer srv.Kill()
	res := &RedisResult{}
	res.Version = "redis-server"
	if out, err := redisRunOut(ctx, redisserver.Bin, "--version"); err == nil {
		for _, f := range strings.Fields(out) {
			if v, ok := strings.CutPrefix(f, "v="); ok {
				res.Version = "redis-server " + v
			}
		}
	}

	// The state layer, in this process.
	local, err := state.Open(filepath.Join(rdir, "hits.db"), state.Options{})
	if err != nil {
		return nil, err
	}
	defer local.Close()
	rc, err := redisstore.New(srv.URL(1), redisstore.Options{})
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	type hitter interface {
		Hit(context.Context, state.Request) (state.Result, error)
	}
	stores := []struct {
		name string
		h    hitter
	}{{"bbolt", local}, {"redis", rc}}
	for _, conc := range cfg.Conc {
		row := RedisRow{What: "Hit", Conc: conc}
		for r := 0; r < cfg.Rounds; r++ {
			rates := [2]float64{}
			for k := range stores {
				i := k
				if r%2 == 1 {
					i = 1 - k
				}
				st := stores[i]
				took, err := redisBenchHits(ctx, st.h, conc, cfg.Hits, fmt.Sprintf("r%d.%s", r, st.name))
				if err != nil {
					return nil, fmt.Errorf("%s Hit: %w", st.name, err)
				}
				rates[i] = float64(cfg.Hits) / took.Seconds()
			}
			row.BBolt, row.Redis = append(row.BBolt, rates[0]), append(row.Redis, rates[1])
			row.Ratios = append(row.Ratios, rates[1]/rates[0])
			fmt.Fprintf(progress, "  redis Hit c=%-2d round %d: bbolt %8.0f/s  redis %7.0f/s  (%.2f×)\n", conc, r+1, rates[0], rates[1], rates[1]/rates[0])
		}
		res.State = append(res.State, row)
	}

	// The daemon, through the milter protocol.
	start := func(name string, extra ...string) (*Proc, error) {
		port, err := testproc.FreePort(ctx, "")
		if err != nil {
			return nil, err
		}
		sdir := filepath.Join(cfg.Dir, name+"-state")
		if err := os.MkdirAll(sdir, 0o755); err != nil {
			return nil, err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		args := append([]string{"serve", "-listen", fmt.Sprintf("inet:%d@127.0.0.1", port), "-state", filepath.Join(sdir, "state.db"),
			"-local-domains", LocalDomain, "-quarantine-mailbox", QuarantineMailbox}, extra...)
		return StartProc(sctx, name, cfg.Dir, addr, cfg.Bin, args...)
	}
	bb, err := start("loopbreaker-bbolt")
	if err != nil {
		return nil, err
	}
	defer bb.Stop()
	rd, err := start("loopbreaker-redis", "-redis", srv.URL(2))
	if err != nil {
		return nil, err
	}
	defer rd.Stop()
	for _, mail := range protocolMails {
		for _, conc := range cfg.Conc {
			row := RedisRow{What: mail.name, Conc: conc}
			for _, p := range []*Proc{bb, rd} {
				if _, err := Drive(ctx, p.Addr, conc, max(cfg.Messages/5, 30), mail.gen); err != nil {
					return nil, fmt.Errorf("warm-up %s: %w", p.Name, err)
				}
			}
			var n int
			for r := 0; r < cfg.Rounds; r++ {
				order := []*Proc{bb, rd}
				if r%2 == 1 {
					order = []*Proc{rd, bb}
				}
				rates := map[*Proc]float64{}
				for _, p := range order {
					c0, s0 := p.CPUTime(), ProcCPUTime(srv.Pid())
					out, err := Drive(ctx, p.Addr, conc, cfg.Messages, mail.gen)
					if err != nil {
						return nil, fmt.Errorf("%s, %s mail, %d sessions: %w", p.Name, mail.name, conc, err)
					}
					rates[p] = out.PerSecond()
					if p == rd {
						row.RedisCPU += p.CPUTime() - c0
						row.ServerCPU += ProcCPUTime(srv.Pid()) - s0
						for i, k := range out.Outcomes {
							row.Outcomes[i] += k
						}
					} else {
						row.BBoltCPU += p.CPUTime() - c0
					}
				}
				n += cfg.Messages
				row.BBolt, row.Redis = append(row.BBolt, rates[bb]), append(row.Redis, rates[rd])
				row.Ratios = append(row.Ratios, rates[rd]/rates[bb])
				fmt.Fprintf(progress, "  redis daemon %-8s c=%-2d round %d: bbolt %7.0f/s  redis %7.0f/s  (%.2f×)\n",
					mail.name, conc, r+1, rates[bb], rates[rd], rates[rd]/rates[bb])
			}
			if mail.name == "storm" && row.Outcomes[Redirected] == 0 {
				return nil, fmt.Errorf("%w: %v", ErrNotAStorm, row.Outcomes)
			}
			row.RedisCPU /= time.Duration(max(n, 1))
			row.BBoltCPU /= time.Duration(max(n, 1))
			row.ServerCPU /= time.Duration(max(n, 1))
			res.Daemon = append(res.Daemon, row)
		}
	}

	// Storms split over two daemons sharing one Redis.
	rd2, err := start("loopbreaker-redis-2", "-redis", srv.URL(2))
	if err != nil {
		return nil, err
	}
	defer rd2.Stop()
	res.Storms, res.Sessions, res.PerSess = cfg.Storms, 16, 4
	for k := 0; k < cfg.Storms; k++ {
		sender := fmt.Sprintf("split%d.%d@%s", k, time.Now().UnixNano()%1e6, LocalDomain)
		half := res.Sessions * res.PerSess / 2
		var wg sync.WaitGroup
		outs := make([]*RunResult, 2)
		errs := make([]error, 2)
		for i, p := range []*Proc{rd, rd2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				outs[i], errs[i] = Drive(ctx, p.Addr, res.Sessions/2, half, func(j int) *Mail { return Storm(sender, i*half+j) })
			}()
		}
		wg.Wait()
		passed := 0
		for i := range outs {
			if errs[i] != nil {
				return nil, errs[i]
			}
			passed += outs[i].Outcomes[Passed]
		}
		res.Sent += 2 * half
		res.Passed += passed
		res.Beyond += max(0, passed-StormLimit)
		fmt.Fprintf(progress, "  redis split storm %d: %d sent over two daemons, %d passed (limit %d)\n", k+1, 2*half, passed, StormLimit)
	}
	return res, nil
}

// redisBenchHits runs n Hits on distinct keys (5 per key, under any limit) from conc
// goroutines and returns the wall time.
func redisBenchHits(ctx context.Context, h interface {
	Hit(context.Context, state.Request) (state.Result, error)
}, conc, n int, prefix string) (time.Duration, error) {
	var wg sync.WaitGroup
	errs := make(chan error, conc)
	began := time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += conc {
				_, err := h.Hit(ctx, state.Request{Rule: "forward-storm", Key: fmt.Sprintf("%s.%d@%s", prefix, i/5, LocalDomain),
					Window: 15 * time.Minute, Limit: StormLimit, BlockFor: time.Hour, Subject: "FW: x"})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(began)
	close(errs)
	return took, <-errs
}

func redisRunOut(ctx context.Context, name string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, name, args...).Output()
	s := string(out)
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s, err
}

// WriteRedisTables prints the section's tables.
func WriteRedisTables(w io.Writer, r *RedisResult) {
	fmt.Fprintln(w, "| state call | goroutines | bbolt Hit/s | Redis Hit/s | ratio Redis/bbolt (median, min–max) |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---|")
	for _, row := range r.State {
		lo, hi := MinMax(row.Ratios)
		fmt.Fprintf(w, "| Hit | %d | %.0f | %.0f | **%.3f×** (%.3f–%.3f) |\n", row.Conc, Median(row.BBolt), Median(row.Redis), Median(row.Ratios), lo, hi)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| mail | sessions | loopbreaker bbolt msg/s | loopbreaker Redis msg/s | ratio Redis/bbolt (median, min–max) | CPU per msg: daemon bbolt / daemon Redis + redis-server | Redis daemon outcomes |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---|---|---|")
	for _, row := range r.Daemon {
		lo, hi := MinMax(row.Ratios)
		fmt.Fprintf(w, "| %s | %d | %.0f | %.0f | **%.2f×** (%.2f–%.2f) | %s / %s + %s | %s |\n", row.What, row.Conc, Median(row.BBolt), Median(row.Redis),
			Median(row.Ratios), lo, hi, cpuStr(row.BBoltCPU), cpuStr(row.RedisCPU), cpuStr(row.ServerCPU), outcomes(row.Outcomes))
	}
	if r.Storms > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| storms split over two daemons sharing Redis | sessions × messages each (half per daemon) | sent | passed (limit 25 per storm) | **passed beyond the limit** |")
		fmt.Fprintln(w, "|---:|---|---:|---:|---:|")
		fmt.Fprintf(w, "| %d | %d × %d | %d | %d | **%d** |\n", r.Storms, r.Sessions, r.PerSess, r.Sent, r.Passed, r.Beyond)
	}
}

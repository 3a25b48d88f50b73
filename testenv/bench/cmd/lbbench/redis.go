package main

import (
	"context"
	"fmt"
	"io"

	"github.com/loopbreaker/loopbreaker/testenv/bench"
)

// runRedisSection is section 5: the Redis state backend beside bbolt
// (`-sections redis`; it needs Debian's redis-server).
func runRedisSection(ctx context.Context, f *flags, dir string, conc []int, stdout, stderr io.Writer) error {
	fmt.Fprintln(stderr, "redis ...")
	bin := f.daemon
	if bin == "" {
		var err error
		if bin, err = bench.Build(ctx, dir, "./cmd/loopbreaker"); err != nil {
			return err
		}
	}
	cfg := bench.RedisConfig{Bin: bin, Dir: dir, Rounds: f.rounds, Hits: 20000, Messages: f.messages, Conc: conc, Storms: 10}
	res, err := bench.RunRedis(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "## 5. Redis: the shared state backend beside bbolt\n\n%s on 127.0.0.1 (no persistence), in the same machine. First the state call alone, in this process: %d `Hit`s per round on distinct keys (5 per key, never over the limit) from 1 and more goroutines, `state.Store` (bbolt) and `redisstore.Redis` (one Lua script per Hit, one round trip) in alternating rounds. Then the daemon through the bare milter protocol as in section 1: `loopbreaker serve` on bbolt against `loopbreaker serve -redis redis://127.0.0.1:PORT/2`, %d alternating rounds of %d messages; the Redis row's CPU adds redis-server's. Last, %d storms each split over two daemons that share the Redis: the limit must hold over both.\n\n",
		res.Version, cfg.Hits, cfg.Rounds, cfg.Messages, cfg.Storms)
	bench.WriteRedisTables(stdout, res)
	fmt.Fprintln(stdout)
	return nil
}

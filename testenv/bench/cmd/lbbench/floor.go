package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv/bench"
	"github.com/loopbreaker/loopbreaker/testenv/redisserver"
)

// startFloorAndPeer starts the floor milter (TCP with TCP_QUICKACK, unix
// socket, and stock libmilter on TCP) and rspamd with its Redis, for the
// Postfix section. What cannot run here is skipped with a note saying why.
func startFloorAndPeer(ctx context.Context, f *flags, dir string, stderr io.Writer) (ts []*bench.Target, notes []string, stop func(), err error) {
	var stops []func()
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	if f.floor {
		bin, err := bench.BuildFloor(ctx, dir)
		switch {
		case errors.Is(err, bench.ErrNoFloor):
			notes = append(notes, fmt.Sprintf("floor: skipped: %v.", err))
		case err != nil:
			return nil, nil, stop, err
		default:
			for _, c := range []struct {
				name           string
				unix, quickack bool
			}{{"floor", false, true}, {"floor unix", true, false}, {"floor stock", false, false}} {
				t, err := bench.StartFloor(ctx, strings.ReplaceAll(c.name, " ", "-"), dir, bin, c.unix, c.quickack)
				if err != nil {
					return nil, nil, stop, err
				}
				t.Name = c.name
				stops = append(stops, t.Proc.Stop)
				ts = append(ts, t)
			}
			notes = append(notes, "floor: `floor -q -p inet:PORT@127.0.0.1` (TCP_QUICKACK after every read, as loopbreaker), `floor -p unix:PATH` and `floor -p inet:PORT@127.0.0.1` (\"floor stock\": libmilter as it comes, delayed ACKs); testenv/bench/floor/floor.c built with `cc -O2 floor.c -lmilter -lpthread`.")
		}
	}
	if f.peer {
		if _, err := os.Stat(bench.RspamdBin); err != nil {
			notes = append(notes, fmt.Sprintf("rspamd: skipped: %v.", bench.ErrNoRspamd))
			return ts, notes, stop, nil
		}
		if err := redisserver.Available(); err != nil {
			notes = append(notes, fmt.Sprintf("rspamd: skipped: %v.", err))
			return ts, notes, stop, nil
		}
		rdir := filepath.Join(dir, "rspamd-redis")
		if err := os.MkdirAll(rdir, 0o755); err != nil {
			return nil, nil, stop, err
		}
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		srv, err := redisserver.Start(sctx, rdir)
		cancel()
		if err != nil {
			return nil, nil, stop, err
		}
		stops = append(stops, srv.Kill)
		fmt.Fprintln(stderr, "starting rspamd (20–30 s) ...")
		t, err := bench.StartRspamd(ctx, dir, srv.Addr)
		if err != nil {
			return nil, nil, stop, err
		}
		stops = append(stops, t.Proc.Stop)
		ts = append(ts, t)
		notes = append(notes, fmt.Sprintf("rspamd: %s, `rspamd -f -c DIR/rspamd.conf` as _rspamd: the proxy worker in milter mode with self_scan, no C modules, no rules, of the Lua plugins only ratelimit with `bounce_to = { burst = %d; rate = \"%s\"; }` (loopbreaker's bounces-to-recipient: 50 in 10 minutes) in a redis-server on loopback; configuration in testenv/bench/rspamd.go.",
			bench.RspamdVersion(ctx), bench.RspamdBounceBurst, bench.RspamdBounceRate))
	}
	return ts, notes, stop, nil
}

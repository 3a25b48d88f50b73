// Command lbbench measures what loopbreaker costs (`make bench`): the bare
// milter protocol against a pass-through milter, Postfix end to end with no
// milter, the pass-through and loopbreaker, the state at 1k to 1M keys, and
// the containment of a concurrent storm. It prints Markdown tables; see
// docs/benchmarks.md for how to read them.
//
// It needs root and Debian's postfix package for the Postfix section
// (-sections without postfix skips it).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv/bench"
	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == bench.ScaleChildArg {
		if err := bench.ScaleChild(os.Args[2:], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "lbbench:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "lbbench:", err)
		os.Exit(1)
	}
}

type flags struct {
	sections                  string
	rounds, messages          int
	conc                      string
	pfRounds, pfMsgs          int
	pfSess                    string
	pfBody                    int
	sizes                     string
	trials, trialSess, perSes int
	keep                      bool
	daemon, daemonB           string
	unix, floor, peer         bool
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f flags
	fs := flag.NewFlagSet("lbbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.sections, "sections", "protocol,postfix,scale,containment,redis", "sections to run")
	fs.IntVar(&f.rounds, "rounds", 5, "protocol: alternating rounds per cell")
	fs.IntVar(&f.messages, "messages", 2000, "protocol: messages per round and milter")
	fs.StringVar(&f.conc, "sessions", "1,16", "protocol: concurrent sessions")
	fs.IntVar(&f.pfRounds, "postfix-rounds", 6, "postfix: rounds (each runs every configuration once)")
	fs.IntVar(&f.pfMsgs, "postfix-messages", 600, "postfix: messages per round and configuration at 4 sessions or more (a quarter per session below)")
	fs.StringVar(&f.pfSess, "postfix-sessions", "16,1", "postfix: smtp-source -s values, one table each")
	fs.IntVar(&f.pfBody, "postfix-body", 0, "postfix: body size in bytes (0: the ordinary message's, about 2.5 KB)")
	fs.StringVar(&f.sizes, "keys", "1000,100000,1000000", "scale: tracked keys")
	fs.IntVar(&f.trials, "storms", 20, "containment: storms")
	fs.IntVar(&f.trialSess, "storm-sessions", 16, "containment: concurrent sessions per storm")
	fs.IntVar(&f.perSes, "storm-messages", 4, "containment: messages per session")
	fs.BoolVar(&f.keep, "keep", false, "keep the work directory (logs, state)")
	fs.StringVar(&f.daemonB, "compare", "", "postfix: a second loopbreaker binary, measured side by side as \"loopbreaker B\"")
	fs.BoolVar(&f.unix, "unix", true, "postfix: also measure loopbreaker on a unix socket (\"loopbreaker unix\")")
	fs.BoolVar(&f.floor, "floor", true, "postfix: also measure the floor, a do-nothing libmilter milter negotiating what loopbreaker negotiates (needs cc and libmilter-dev)")
	fs.BoolVar(&f.peer, "peer", true, "postfix: also measure rspamd, the peer (needs Debian's rspamd: bash scripts/deps.sh --bench), and run the storm section")
	fs.StringVar(&f.daemon, "daemon", "", "a loopbreaker binary to measure instead of building ./cmd/loopbreaker (e.g. a candidate fix)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	sections := map[string]bool{}
	for _, s := range strings.Split(f.sections, ",") {
		sections[strings.TrimSpace(s)] = true
	}
	conc, err := ints(f.conc)
	if err != nil {
		return err
	}
	pfSess, err := ints(f.pfSess)
	if err != nil {
		return err
	}
	slices.Reverse(pfSess) // the larger first
	sizes, err := ints(f.sizes)
	if err != nil {
		return err
	}

	// A world-searchable work directory: the postfix user must reach it.
	dir, err := os.MkdirTemp("", "lbbench-")
	if err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	if f.keep {
		fmt.Fprintln(stderr, "work directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	began := time.Now()
	fmt.Fprintln(stdout, "## Machine")
	fmt.Fprintln(stdout)
	bench.WriteMachine(stdout)
	fmt.Fprintln(stdout)
	fmt.Fprintf(stdout, "Command: `lbbench %s`\n\n", strings.Join(args, " "))

	var lb, pt *bench.Target
	var extra []*bench.Target
	if sections["protocol"] || sections["postfix"] || sections["containment"] {
		fmt.Fprintln(stderr, "building loopbreaker and the pass-through (no -race) ...")
		lbBin := f.daemon
		if lbBin == "" {
			if lbBin, err = bench.Build(ctx, dir, "./cmd/loopbreaker"); err != nil {
				return err
			}
		} else {
			fmt.Fprintf(stdout, "loopbreaker binary: %s (given with -daemon)\n\n", lbBin)
		}
		ptBin, err := bench.Build(ctx, dir, "./testenv/bench/cmd/passthrough")
		if err != nil {
			return err
		}
		lb, err = startLoopbreaker(ctx, "loopbreaker", dir, lbBin)
		if err != nil {
			return err
		}
		defer lb.Proc.Stop()
		ptPort, err := testproc.FreePort(ctx, "")
		if err != nil {
			return err
		}
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		ptProc, err := bench.StartProc(sctx, "passthrough", dir, fmt.Sprintf("127.0.0.1:%d", ptPort), ptBin,
			"-listen", fmt.Sprintf("127.0.0.1:%d", ptPort))
		cancel()
		if err != nil {
			return err
		}
		defer ptProc.Stop()
		if f.unix && sections["postfix"] {
			t, err := startLoopbreaker(ctx, "loopbreaker-unix", dir, lbBin)
			if err != nil {
				return err
			}
			defer t.Proc.Stop()
			t.Name = "loopbreaker unix"
			extra = append(extra, t)
		}
		if sections["postfix"] {
			ts, notes, stop, err := startFloorAndPeer(ctx, &f, dir, stderr)
			defer stop()
			if err != nil {
				return err
			}
			extra = append(extra, ts...)
			for _, n := range notes {
				fmt.Fprintln(stdout, n)
				fmt.Fprintln(stdout)
			}
		}
		if f.daemonB != "" {
			t, err := startLoopbreaker(ctx, "loopbreaker-b", dir, f.daemonB)
			if err != nil {
				return err
			}
			defer t.Proc.Stop()
			t.Name = "loopbreaker B"
			extra = append(extra, t)
			fmt.Fprintf(stdout, "loopbreaker B: %s (given with -compare)\n\n", f.daemonB)
		}
		pt = &bench.Target{Name: "pass-through", Addr: ptProc.Addr, Proc: ptProc}
		fmt.Fprintf(stdout, "loopbreaker: `loopbreaker serve -listen inet:PORT@127.0.0.1 -state DIR/state.db -local-domains %s -quarantine-mailbox %s` (default policy, log level info, logging to a file); pass-through: `passthrough -listen 127.0.0.1:PORT`. Both built with `go build` (no -race) and run as processes of their own.\n\n",
			bench.LocalDomain, bench.QuarantineMailbox)
	}

	if sections["protocol"] {
		fmt.Fprintln(stderr, "bare protocol ...")
		cfg := bench.ProtocolConfig{Rounds: f.rounds, Messages: f.messages, Conc: conc}
		rows, err := bench.RunProtocol(ctx, lb, pt, cfg, stderr)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "## 1. Bare protocol: go-milter client → milter\n\n%d alternating rounds of %d messages per milter and cell (the order flips every round); one milter connection per message, as Postfix opens one per SMTP session; the client offers what Postfix 3.7 offers and sends every event the milter negotiates. Ratio = loopbreaker msg/s ÷ pass-through msg/s in the same round. Latency is the whole milter conversation of a message, connection included. The Go client sets TCP_NODELAY (Postfix does not): see section 2b for what that changes.\n\n", f.rounds, f.messages)
		bench.WriteProtocolTable(stdout, rows)
		fmt.Fprintln(stdout)
	}
	if sections["postfix"] {
		fmt.Fprintln(stderr, "postfix end to end ...")
		fmt.Fprintf(stdout, "## 2. Postfix end to end: smtp-source → Postfix → smtp-sink\n\n")
		for k, sess := range pfSess {
			pdir := filepath.Join(dir, fmt.Sprintf("postfix-%d", sess))
			if err := os.Mkdir(pdir, 0o755); err != nil {
				return err
			}
			msgs := f.pfMsgs * min(sess, 4) / 4
			cfg := bench.PostfixConfig{Rounds: f.pfRounds, Messages: msgs, Sessions: sess, Body: f.pfBody, Dir: pdir}
			res, err := bench.RunPostfix(ctx, lb, pt, cfg, stderr, extra...)
			if err != nil {
				return err
			}
			var names []string
			for _, c := range res.Cells {
				names = append(names, c.Name)
			}
			fmt.Fprintf(stdout, "### 2%c. %d SMTP session(s) at a time\n\nOne Postfix %s instance with an smtpd service per configuration (%s), all sharing queue, cleanup, qmgr and smtp and relaying to `smtp-sink -u nobody 127.0.0.1:PORT 256`; %d rounds, each running every configuration once in rotating order: `smtp-source %s`, then wait until the queue is empty. Ratios are per round against no milter; CPU is every process involved (Postfix's, the milter's, smtp-source's and smtp-sink's) per message, and \"CPU capacity\" is no milter's CPU per message divided by the configuration's: the throughput ratio a box saturated by mail would see, and far less noisy than the wall clock on a shared machine.\n\n",
				'a'+k, sess, res.Version, strings.Join(names, ", "), f.pfRounds, res.SourceArgs)
			bench.WritePostfixTable(stdout, res)
			fmt.Fprintln(stdout)
			bench.WriteFloorTable(stdout, res)
			fmt.Fprintln(stdout)
		}
		var peer *bench.Target
		for _, t := range extra {
			if t.Name == "rspamd" {
				peer = t
			}
		}
		if peer != nil {
			fmt.Fprintln(stderr, "storms through postfix ...")
			rows, err := bench.RunStorms(ctx, filepath.Join(dir, "postfix-storms"), 60, 80, stderr, lb, peer)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "### 2%c. Storms through Postfix: loopbreaker and rspamd\n\nOne Postfix with an smtpd per milter; every message in an SMTP session of its own (Go's net/smtp); outcomes from the SMTP reply and, for accepted mail, the maillog's delivery to smtp-sink. loopbreaker runs the built-in policy (forward-storm: 25 forwarded NDRs per sender in 15 minutes, then redirect to the quarantine mailbox; bounces-to-recipient: 50 per recipient in 10 minutes, then reject); rspamd runs ratelimit's bounce_to bucket (burst %d, %s), its only rule that applies: its bounce_senders are null and MAILER-DAEMON-like senders, so a forwarded NDR, sent by a user, is ordinary mail to it.\n\n",
				'a'+len(pfSess), bench.RspamdBounceBurst, bench.RspamdBounceRate)
			bench.WriteStormTable(stdout, rows)
			fmt.Fprintln(stdout)
		}
	}
	if sections["scale"] {
		fmt.Fprintln(stderr, "scale ...")
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		rs, err := bench.RunScale(ctx, exe, dir, sizes, stderr)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "## 3. Scale: the state with many tracked keys\n\nEach size in fresh processes (`lbbench %s fill|load KEYS DIR`): a state.Store filled with KEYS forward-storm keys (senders), %d new keys per flush as the once-a-second flusher would see them at %d messages/s; GC; RSS and the live heap. Then, per key at most, 5 Hits and 19 decisions through engine.Engine (default policy) on forwarded NDRs from tracked senders (no key goes over the limit of 25), in %d batches that alternate with the same work on a %d-key store in the same process: the ratio is the median of the per-batch ratios. Then a flush, a sweep; a second process opens the file as a restarted daemon would.\n\n", bench.ScaleChildArg, bench.FlushEvery, bench.FlushEvery, bench.ScaleBatches, bench.RefKeys)
		bench.WriteScaleTable(stdout, rs)
		fmt.Fprintln(stdout)
	}
	if sections["containment"] {
		fmt.Fprintln(stderr, "containment ...")
		cfg := bench.ContainmentConfig{Trials: f.trials, Sessions: f.trialSess, PerSess: f.perSes}
		ts, err := bench.RunContainment(ctx, lb, cfg, stderr)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "## 4. Containment: %d concurrent sessions feeding one storm\n\nEach storm is one sender's forwarded NDRs (forward-storm: 25 per 15 min, then redirect), sent by %d go-milter sessions at once to the loopbreaker process.\n\n", f.trialSess, f.trialSess)
		bench.WriteContainmentTable(stdout, cfg, ts)
		fmt.Fprintln(stdout)
	}
	if sections["redis"] {
		if err := runRedisSection(ctx, &f, dir, conc, stdout, stderr); err != nil {
			return err
		}
	}
	load := "unknown"
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	fmt.Fprintf(stdout, "Total time: %s. Load average at the end: %s.\n", time.Since(began).Round(time.Second), load)
	return nil
}

// startLoopbreaker runs a loopbreaker binary as the benchmarks configure
// it: default policy, fresh state, log level info to a file.
// A name ending in "-unix" listens on a unix socket, else on a loopback port.
func startLoopbreaker(ctx context.Context, name, dir, bin string) (*bench.Target, error) {
	stateDir := filepath.Join(dir, name+"-state")
	if err := os.Mkdir(stateDir, 0o755); err != nil {
		return nil, err
	}
	sockDir := ""
	if strings.HasSuffix(name, "-unix") {
		sockDir = stateDir
	}
	addr, spec, err := bench.MilterSocket(ctx, sockDir)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	p, err := bench.StartProc(sctx, name, dir, addr, bin,
		"serve", "-listen", spec, "-state", filepath.Join(stateDir, "state.db"),
		"-local-domains", bench.LocalDomain, "-quarantine-mailbox", bench.QuarantineMailbox)
	if err != nil {
		return nil, err
	}
	if testproc.Network(addr) == "unix" {
		// The daemon makes its socket 0660; Postfix's smtpd runs as postfix.
		g, err := user.LookupGroup("postfix")
		if err != nil {
			p.Stop()
			return nil, err
		}
		gid, _ := strconv.Atoi(g.Gid)
		if err := os.Chown(addr, 0, gid); err != nil {
			p.Stop()
			return nil, err
		}
	}
	return &bench.Target{Name: "loopbreaker", Addr: p.Addr, Proc: p}, nil
}

func ints(s string) ([]int, error) {
	var out []int
	for _, p := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad number %q in %q", p, s)
		}
		out = append(out, n)
	}
	if !slices.IsSorted(out) {
		slices.Sort(out)
	}
	return out, nil
}

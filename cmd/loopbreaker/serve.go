package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loopbreaker/loopbreaker/cmd/loopbreaker/internal/admin"
	"github.com/loopbreaker/loopbreaker/cmd/loopbreaker/internal/metrics"
	"github.com/loopbreaker/loopbreaker/cmd/loopbreaker/internal/notify"
	"github.com/loopbreaker/loopbreaker/loopdetect/engine"
	"github.com/loopbreaker/loopbreaker/loopdetect/policy"
	"github.com/loopbreaker/loopbreaker/milter"
	"github.com/loopbreaker/loopbreaker/state"
	"github.com/loopbreaker/loopbreaker/state/redisstore"
)

// Defaults of serve.
const (
	defaultListen      = "inet:7357@127.0.0.1"
	defaultSystemState = "/var/lib/loopbreaker/state.db" // admin.Installed.SystemState
	envState           = "LOOPBREAKER_STATE"
	envPolicy          = "LOOPBREAKER_POLICY"
	shutdownGrace      = 30 * time.Second
)

type serveFlags struct {
	listen, state, policyFile, localDomains, quarantine string
	logFormat, logLevel, pidFile, adminSocket, metrics  string
	adminTCP, adminTokenFile                            string
	redis, redisFailMode, name                          string
	mode                                                string
	maxSessions                                         int
	idleTimeout, adminMailDelay                         time.Duration
}

var serveCommand = &command{
	name:    "serve",
	summary: "run the milter daemon",
	doc: `Serves the milter protocol on -listen for Postfix (smtpd_milters = inet:127.0.0.1:7357) or Sendmail (INPUT_MAIL_FILTER), decides on every message with the policy, and serves the admin API the other commands use on a unix socket.

SIGTERM and SIGINT stop accepting connections and let the sessions in progress finish (30 s at most). SIGHUP reloads the policy file; a policy that does not load keeps the running one, and the log says why. A policy that does not load at start stops the daemon with file:line:col. A reload whose policy changes redis moves the state there (without redis, to the state file alone), carrying the blocks in force; messages wait for the move (milliseconds), none is lost or counted twice. A Redis that does not answer refuses the reload: the running policy and state stay, and the log says why. -redis on the command line wins over the policy's redis, at start and across reloads.

-name names the daemon in the audit trail the daemons sharing a Redis share: loopbreaker events on any of them lists the decisions of all, each with its MTA.

-mode monitor counts every rule and starts and ends blocks exactly as enforce does, but acts on no message: the log, loopbreaker events, loopbreaker blocks, the metrics and the admin mail say what would have been done ("would redirect"). Without -mode the policy's mode setting decides, and a reload can switch it, keeping counts and blocks; -mode overrides the policy's mode at start and across reloads.`,
	setup: func(fs *flag.FlagSet) runFunc {
		var f serveFlags
		defineServeFlags(fs, &f)
		return func(ctx context.Context, _ []string, _, stderr io.Writer) error {
			log, err := newLogger(stderr, f.logFormat, f.logLevel)
			if err != nil {
				return usageError(err.Error())
			}
			routeLibraryLogs(log)
			if f.mode != "" {
				var m policy.Mode
				if err := m.UnmarshalText([]byte(f.mode)); err != nil {
					return usageError("bad -mode: " + err.Error())
				}
				f.mode = string(m)
			}
			if f.policyFile == "" {
				f.policyFile = os.Getenv(envPolicy)
			}
			if f.adminSocket == "" {
				f.adminSocket = os.Getenv(admin.EnvAdmin)
			}
			if err := serve(ctx, &f, log); err != nil {
				log.Error("loopbreaker stopped", "err", err)
				if f.logFormat == "json" {
					return exitStatus(1) // logged; a plain line would break the JSON stream
				}
				return err // also as plain text, for a person at the terminal
			}
			return nil
		}
	},
}

// serveFlagSet is serve's flag set, on f.
func serveFlagSet(f *serveFlags, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	defineServeFlags(fs, f)
	return fs
}

// defineServeFlags defines serve's flags on fs, to be parsed into f.
func defineServeFlags(fs *flag.FlagSet, f *serveFlags) {
	fs.StringVar(&f.listen, "listen", defaultListen, "milter `SOCKET`: inet:PORT@HOST, inet6:PORT@HOST or unix:/PATH")
	fs.StringVar(&f.state, "state", "", "state `FILE` (default $"+envState+", else the policy's state_file, else "+defaultSystemState+")")
	fs.StringVar(&f.policyFile, "policy", "", "policy `FILE` (default $"+envPolicy+", else the built-in policy)")
	fs.StringVar(&f.localDomains, "local-domains", "", "comma-separated local `DOMAINS` (overrides the policy's local_domains)")
	fs.StringVar(&f.quarantine, "quarantine-mailbox", "", "quarantine mailbox `ADDRESS` for the redirect action (overrides the policy's quarantine_mailbox)")
	fs.StringVar(&f.mode, "mode", "", "`MODE`: enforce (act) or monitor (count and block, act on nothing, say what would be done); overrides the policy's mode, also across reloads (default: the policy's mode, else enforce)")
	fs.StringVar(&f.logFormat, "log-format", "text", "log `FORMAT`: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log `LEVEL`: debug, info, warn, error")
	fs.StringVar(&f.pidFile, "pidfile", "", "pid `FILE`, for loopbreaker reload (default: "+admin.Installed.RunDir+"/"+admin.PidFileName+" for the state file "+defaultSystemState+" when "+admin.Installed.RunDir+" is writable, else "+admin.PidFileName+" beside the state file)")
	fs.StringVar(&f.adminSocket, "admin", "", "admin API unix `SOCKET` (default: $"+admin.EnvAdmin+", else "+admin.Installed.RunDir+"/"+admin.SocketName+" for the state file "+defaultSystemState+" when "+admin.Installed.RunDir+" is writable, else "+admin.SocketName+" beside the state file)")
	fs.StringVar(&f.adminTCP, "admin-tcp", "", "also serve the admin API and page on this TCP address `HOST:PORT` (needs -admin-token-file)")
	fs.StringVar(&f.adminTokenFile, "admin-token-file", "", "`FILE` holding the bearer token for -admin-tcp (16 characters at least)")
	fs.StringVar(&f.redis, "redis", "", "share counts and blocks with other daemons in this Redis: `URL` redis://HOST:PORT/DB, redis-sentinel://HOST:PORT[,HOST:PORT...]/MASTER[/DB] or redis-cluster://HOST:PORT[,HOST:PORT...] (default: the policy's redis, else the state file alone)")
	fs.StringVar(&f.redisFailMode, "redis-fail-mode", "", "`MODE` while Redis is unreachable: open (count in the state file) or pass (count nothing) (default: the policy's redis_fail_mode, else open)")
	fs.StringVar(&f.name, "name", "", "this daemon's `NAME` in the audit trail that the daemons sharing a Redis share: loopbreaker events and the admin page show which MTA decided (default: the host's name)")
	fs.StringVar(&f.metrics, "metrics", "", "serve Prometheus metrics on this `HOST:PORT`, e.g. 127.0.0.1:9357 (default: off)")
	fs.DurationVar(&f.adminMailDelay, "admin-mail-delay", notify.DefaultDelay, "wait this `DURATION` after a block starts before mailing the admin, to gather sample subjects")
	fs.IntVar(&f.maxSessions, "max-sessions", milter.DefaultMaxSessions, "most MTA connections (`N`) served at once (-1: no cap)")
	fs.DurationVar(&f.idleTimeout, "idle-timeout", milter.DefaultIdleTimeout, "close an MTA connection idle this `DURATION` (-1s: never)")
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("bad -log-level %q", level)
	}
	underJournald := os.Getenv("JOURNAL_STREAM") != ""
	opts := &slog.HandlerOptions{Level: lv, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		// Under systemd, journald stamps every line itself.
		if underJournald && len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		// Durations as people write them ("30s"), not as nanoseconds
		// (the JSON handler's 30000000000).
		if a.Value.Kind() == slog.KindDuration {
			return slog.String(a.Key, a.Value.Duration().String())
		}
		return a
	}}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("bad -log-format %q (text or json)", format)
}

// routeLibraryLogs sends what the libraries log to log, so that every line
// the daemon writes has one format: the standard log package (net/http's
// server errors, ...), go-milter's warnings and go-redis's messages.
func routeLibraryLogs(log *slog.Logger) {
	slog.SetDefault(log) // also redirects the standard log package to log's handler
	milter.RouteLibraryLog(log)
	redisLog.Store(log)
	setRedisLogger.Do(func() { redis.SetLogger(redisLogger{}) })
}

// go-redis, like go-milter, logs through one package-level logger: it is set
// once and reads the daemon's logger through an atomic pointer, so that
// daemons started one after another in one process (the tests) never race.
var (
	redisLog       atomic.Pointer[slog.Logger]
	setRedisLogger sync.Once
)

// redisLogger is go-redis's logging interface on slog.
type redisLogger struct{}

func (redisLogger) Printf(ctx context.Context, format string, v ...any) {
	if l := redisLog.Load(); l != nil {
		l.WarnContext(ctx, fmt.Sprintf(format, v...), "from", "go-redis")
	}
}

// loadPolicy reads the policy file (or the built-in one) and applies the
// command line's overrides.
func loadPolicy(f *serveFlags) (*policy.Policy, error) {
	p := policy.Default()
	if f.policyFile != "" {
		var err error
		if p, err = policy.Load(f.policyFile); err != nil {
			return nil, err
		}
	}
	var domains []string
	for _, d := range strings.Split(f.localDomains, ",") {
		if d = strings.TrimSpace(d); d != "" {
			domains = append(domains, d)
		}
	}
	p.Apply(policy.Overrides{LocalDomains: domains, QuarantineMailbox: f.quarantine, Mode: policy.Mode(f.mode)})
	return p, nil
}

// statePath picks the state file: the flag, the environment, the policy,
// else the system path. It does not look at the working directory: `make
// run` passes the checkout's own path with -state.
func statePath(flagValue string, p *policy.Policy) string {
	switch {
	case flagValue != "":
		return flagValue
	case os.Getenv(envState) != "":
		return os.Getenv(envState)
	case p.StateFile != "":
		return p.StateFile
	}
	return defaultSystemState
}

func serve(ctx context.Context, f *serveFlags, log *slog.Logger) error {
	// A soft memory limit that follows the live heap, unless GOMEMLIMIT is
	// set (docs/scaling.md: the GC's headroom was the largest part of the
	// RSS at 1M tracked keys).
	go state.KeepMemoryLimit(ctx.Done(), time.Second)
	p, err := loadPolicy(f)
	if err != nil {
		return fmt.Errorf("policy not loaded: %w", err)
	}
	for _, n := range p.Notes() {
		log.Warn("policy: " + n)
	}
	path := statePath(f.state, p)
	st, err := openBackend(path, f, p, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("closing state", "err", err)
		}
	}()
	ln, err := listen(f.listen)
	if err != nil {
		return err
	}
	pidFile := f.pidFile
	if pidFile == "" {
		pidFile = admin.Installed.DaemonPath(path, admin.PidFileName)
	}
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		log.Warn("cannot write the pid file; `loopbreaker reload` will not find this daemon", "pidfile", pidFile, "err", err)
	} else {
		defer os.Remove(pidFile)
	}
	adminPath := f.adminSocket
	if adminPath == "" {
		adminPath = admin.Installed.DaemonPath(path, admin.SocketName)
	}
	if abs, err := filepath.Abs(adminPath); err == nil {
		adminPath = abs
	}
	eng := engine.New(p, st, log)
	mets := metrics.New(st)
	mets.WatchMode(func() bool { return eng.Policy().CurrentMode() == policy.ModeMonitor })
	notifier := (&notify.Notifier{Policy: eng.Policy, Block: st.Blocked, Log: log, Delay: f.adminMailDelay,
		ReleaseArgs: releaseArgs(adminPath)}).Start()
	timeline := admin.NewTimeline()
	eng.Observe(engine.Observers{mets, notifier, timeline})
	nctx, stopNotifier := context.WithCancel(context.Background())
	defer stopNotifier()
	go notifier.Run(nctx)
	if f.metrics != "" {
		mln, err := net.Listen("tcp", f.metrics)
		if err != nil {
			ln.Close()
			return fmt.Errorf("metrics listener: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", mets.Handler())
		msrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := msrv.Serve(mln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server stopped", "err", err)
			}
		}()
		defer msrv.Close()
	}
	reloadPolicy := func() error {
		err := reload(f, eng, st, log)
		mets.Reloaded(err)
		return err
	}
	srv := milter.NewServer(eng, log, milter.Options{MaxSessions: f.maxSessions, IdleTimeout: f.idleTimeout})

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			_ = reloadPolicy()
		}
	}()

	adminLn, err := admin.Listen(adminPath)
	if err != nil {
		ln.Close()
		return err
	}
	defer os.Remove(adminPath)
	started := time.Now()
	adm := &admin.Server{Store: st, Engine: eng, Log: log, Timeline: timeline,
		Info: func() admin.Status {
			return admin.Status{Version: readBuildVersion().String(), Name: st.name, Started: started, Listen: f.listen, StateFile: path}
		}}
	if f.policyFile != "" {
		adm.Reload = reloadPolicy
	}
	go func() {
		if err := adm.Serve(adminLn); err != nil {
			log.Error("admin API stopped", "err", err)
		}
	}()
	defer adm.Shutdown(context.Background())
	if f.adminTCP != "" {
		token, err := os.ReadFile(f.adminTokenFile)
		if err != nil {
			ln.Close()
			return fmt.Errorf("-admin-tcp needs -admin-token-file: %w", err)
		}
		if len(strings.TrimSpace(string(token))) < 16 {
			ln.Close()
			return fmt.Errorf("the token in %s is shorter than 16 characters", f.adminTokenFile)
		}
		tln, err := net.Listen("tcp", f.adminTCP)
		if err != nil {
			ln.Close()
			return fmt.Errorf("admin TCP listener: %w", err)
		}
		go func() {
			if err := adm.ServeTCP(tln, strings.TrimSpace(string(token))); err != nil {
				log.Error("admin API on TCP stopped", "err", err)
			}
		}()
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	bs := st.BackendStatus()
	backend := strings.TrimSpace(bs.Name + " " + bs.Address)
	log.Info("loopbreaker serving", "name", st.name, "listen", f.listen, "state", path, "backend", backend, "admin", adminPath, "admin_tcp", f.adminTCP, "metrics", f.metrics,
		"policy", p.Source, "mode", string(p.CurrentMode()), "rules", len(p.Rules), "local_domains", strings.Join(p.LocalDomains, ","),
		"quarantine_mailbox", p.QuarantineMailbox)

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down; waiting for sessions in progress", "grace", shutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Warn("shutdown", "err", err)
	}
	<-served
	log.Info("stopped")
	return nil
}

// openState opens the state file and, with -redis or the policy's redis,
// the Redis shared with other daemons, the file being the fallback.
func openState(path string, f *serveFlags, p *policy.Policy, log *slog.Logger) (state.Backend, error) {
	url, mode := redisChoice(f, p)
	failMode, err := redisstore.ParseFailMode(mode)
	if err != nil {
		return nil, err
	}
	var r *redisstore.Redis
	if url != "" {
		if r, err = redisstore.New(url, redisstore.Options{}); err != nil {
			return nil, err
		}
	}
	st, err := state.Open(path, state.Options{Logger: log})
	if err != nil {
		if r != nil {
			r.Close()
		}
		return nil, err
	}
	if r == nil {
		return st, nil
	}
	return redisstore.NewShared(r, st, redisstore.SharedOptions{FailMode: failMode, Logger: log, Name: daemonName(f.name)}), nil
}

// releaseArgs is what the admin mail's release command needs besides KEY
// and -rule to reach this daemon: nothing when the CLI finds its admin
// socket without flags, else -admin SOCKET.
func releaseArgs(adminPath string) string {
	if admin.Installed.FoundWithoutFlags(adminPath, admin.SocketName) {
		return ""
	}
	return "-admin " + notify.ShellQuote(adminPath)
}

// reload swaps in the policy file again and moves the state when the
// policy's redis changed (stateBackend.reload); a bad file, or a backend
// the state cannot move to, keeps the running policy and backend.
func reload(f *serveFlags, eng *engine.Engine, backend *stateBackend, log *slog.Logger) error {
	p, err := loadPolicy(f)
	if err == nil {
		err = backend.reload(context.Background(), p)
	}
	if err != nil {
		log.Error("policy reload refused; the running policy stays", "err", err)
		return err
	}
	was := eng.Policy().CurrentMode()
	eng.SetPolicy(p)
	log.Info("policy reloaded", "policy", p.Source, "mode", string(p.CurrentMode()), "rules", len(p.Rules))
	if now := p.CurrentMode(); now != was {
		log.Warn("mode switched; counts and blocks are kept", "from", string(was), "to", string(now))
	}
	return nil
}

// listen opens a socket given the way opendkim and Postfix write them:
// inet:PORT@HOST, inet6:PORT@HOST, unix:/PATH (also local:/PATH).
func listen(spec string) (net.Listener, error) {
	network, addr, err := parseSocket(spec)
	if err != nil {
		return nil, err
	}
	if network == "unix" {
		if err := os.MkdirAll(filepath.Dir(addr), 0o755); err != nil {
			return nil, fmt.Errorf("socket directory: %w", err)
		}
		// A socket left by a killed daemon would make Listen fail.
		if fi, err := os.Lstat(addr); err == nil && fi.Mode()&os.ModeSocket != 0 {
			if c, err := net.Dial("unix", addr); err == nil {
				c.Close()
				return nil, fmt.Errorf("listen %s: another process is serving on it", spec)
			}
			_ = os.Remove(addr)
		}
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", spec, err)
	}
	if network == "unix" {
		// The MTA's user must be able to connect: group-writable.
		if err := os.Chmod(addr, 0o660); err != nil {
			ln.Close()
			return nil, fmt.Errorf("chmod %s: %w", addr, err)
		}
	}
	return ln, nil
}

func parseSocket(spec string) (network, addr string, err error) {
	kind, rest, ok := strings.Cut(spec, ":")
	if !ok || rest == "" {
		return "", "", fmt.Errorf("bad socket %q: want inet:PORT@HOST or unix:/PATH", spec)
	}
	switch kind {
	case "unix", "local":
		return "unix", rest, nil
	case "inet", "inet6", "tcp":
		port, host, hasHost := strings.Cut(rest, "@")
		if !hasHost {
			host = "127.0.0.1"
			if kind == "inet6" {
				host = "::1"
			}
		}
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			return "", "", fmt.Errorf("bad socket %q: port %q", spec, port)
		}
		network = "tcp4"
		if kind == "inet6" {
			network = "tcp6"
		} else if kind == "tcp" {
			network = "tcp"
		}
		return network, net.JoinHostPort(strings.Trim(host, "[]"), port), nil
	}
	return "", "", fmt.Errorf("bad socket %q: unknown kind %q (inet, inet6, unix)", spec, kind)
}

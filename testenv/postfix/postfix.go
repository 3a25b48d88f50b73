// Package postfix runs private instances of the system's real Postfix
// (Debian package, 3.4 or later) for end-to-end tests.
//
// Each Instance has its own configuration, queue and data directories, its
// own maillog file (written by postlogd, so no syslog daemon is needed), and
// one smtpd listening on a loopback port. Nothing is delivered locally: mail
// leaves through transport_maps or relayhost to "[127.0.0.1]:PORT"
// destinations, typically smtpsink servers, and no DNS is used.
//
// Running Postfix needs root (the master daemon drops to the postfix user the
// package created). Tests should call SkipIfUnavailable first; install the
// package with scripts/deps.sh.
//
// Things worth knowing about private Postfix instances:
//
//   - The postfix user must be able to reach the data directory (master
//     opens its lock file there after dropping privileges), so the instance
//     cannot live below a 0700 directory such as t.TempDir()'s parent; see
//     Config.Dir.
//   - Unless it is PID 1, "postfix start-fg" runs "master -s" as a child of
//     postfix-script, which waits for it; master still makes itself a
//     session leader, so a ^C to the test does not reach it (a watchdog
//     process does the cleanup then). The harness finds an instance's
//     processes by their MAIL_CONFIG environment variable.
//   - Postfix commands print errors on standard error only if it is a
//     terminal, and a fatal error in main.cf happens before maillog_file is
//     known; the harness gives them a pseudo-terminal to capture those.
//   - Postfix waits for a table file modified within the last second to
//     "settle", so the harness backdates the files it writes.
//   - "postfix start-fg" refuses to run if the system's /etc/postfix/main.cf
//     sets multi_instance_directories.
package postfix

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

// Paths of the Postfix commands the harness runs.
const (
	// PostfixCmd is the postfix(1) control program.
	PostfixCmd = "/usr/sbin/postfix"
	// PostconfCmd is postconf(1).
	PostconfCmd = "/usr/sbin/postconf"
	// PostqueueCmd is postqueue(1).
	PostqueueCmd = "/usr/sbin/postqueue"
	// PostsuperCmd is postsuper(1).
	PostsuperCmd = "/usr/sbin/postsuper"
)

// KeepEnv names an environment variable: when it is set to 1, Stop keeps an
// instance's files (normally removed when the harness had to create them
// outside Config.Dir) so that they can be inspected after the test.
const KeepEnv = "LB_POSTFIX_KEEP"

// Config describes a Postfix instance to start.
type Config struct {
	// Dir is a directory owned by the test, typically t.TempDir(). Required.
	// The instance lives in Dir/postfix-NAME. Postfix daemons run as the
	// postfix user and must be able to traverse that path; when they cannot
	// (t.TempDir() has a 0700 parent), the instance lives in a fresh 0755
	// directory under os.TempDir() instead, Dir/postfix-NAME is a symlink to
	// it, and Stop removes it.
	Dir string
	// Name names the instance: syslog_name is "postfix-" + Name, so maillog
	// lines read "postfix-NAME/smtpd[PID]: ...". Default "postfix".
	Name string
	// SMTPAddr is where smtpd listens. It must be an IPv4 loopback address.
	// Empty or port 0 ("127.0.0.1:0") picks a free port on 127.0.0.1.
	SMTPAddr string
	// MyHostname is myhostname. Default Name + "." + MyDomain.
	MyHostname string
	// MyDomain is mydomain. Default: MyHostname without its first label, or
	// "example.test".
	MyDomain string
	// Transports maps a transport_maps key (a domain, ".domain" for its
	// subdomains, or user@domain) to a transport:nexthop value such as
	// "smtp:[127.0.0.1]:2525".
	Transports map[string]string
	// RelayHost is relayhost, e.g. "[127.0.0.1]:2526", for every destination
	// not in Transports. Empty: there is no route to other destinations
	// (default_transport is "retry:"), and rather than look them up in DNS
	// smtpd refuses such recipients with 450 4.1.1 and mail Postfix makes
	// itself for them (a bounce, say) stays deferred.
	RelayHost string
	// Milters is smtpd_milters, e.g. "inet:127.0.0.1:7357" or
	// "unix:/path/to/socket". Empty: none.
	Milters string
	// NonSMTPDMilters is non_smtpd_milters. Empty: none.
	NonSMTPDMilters string
	// MainCF holds extra main.cf settings, applied after everything else so
	// they override the harness defaults (e.g. milter_default_action).
	MainCF map[string]string
	// MasterCF holds extra master.cf lines, appended as they are.
	MasterCF []string
}

// Instance is a running private Postfix. Its methods may be called from
// several goroutines.
type Instance struct {
	name     string
	root     string // instance directory
	ownRoot  bool   // root was created outside Config.Dir; Stop removes it
	confDir  string
	queueDir string
	dataDir  string
	logFile  string
	fgLog    string // stdout and stderr of "postfix start-fg"
	smtpAddr string

	fg       *exec.Cmd
	fgDone   chan struct{} // closed when "postfix start-fg" has exited
	fgErr    error         // its Wait result, readable after fgDone
	watchdog *exec.Cmd
	wdIn     io.WriteCloser

	stopOnce sync.Once
	stopErr  error
}

// Available reports why private Postfix instances cannot run here, or nil
// if they can: Postfix must be installed, with its postfix user and postdrop
// group, and the process must run as root.
func Available() error {
	for _, p := range []string{PostfixCmd, PostconfCmd, PostqueueCmd, PostsuperCmd} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("postfix is not installed (%w); run scripts/deps.sh", err)
		}
	}
	if os.Geteuid() != 0 {
		return errors.New("running Postfix needs root")
	}
	if _, err := user.Lookup("postfix"); err != nil {
		return fmt.Errorf("no postfix user: %w", err)
	}
	if _, err := user.LookupGroup("postdrop"); err != nil {
		return fmt.Errorf("no postdrop group: %w", err)
	}
	return nil
}

// SkipIfUnavailable skips the test, with the reason, when Available reports
// a problem.
func SkipIfUnavailable(tb testing.TB) {
	tb.Helper()
	if err := Available(); err != nil {
		tb.Skipf("skipping Postfix test: %v", err)
	}
}

// MustStart starts an instance for a test: it skips the test if Postfix is
// unavailable, uses tb.TempDir() when cfg.Dir is empty, allows one minute
// for the start, and stops the instance when the test ends (logging its
// maillog if the test failed).
func MustStart(tb testing.TB, cfg Config) *Instance {
	tb.Helper()
	SkipIfUnavailable(tb)
	if cfg.Dir == "" {
		cfg.Dir = tb.TempDir()
	}
	ctx, cancel := context.WithTimeout(tb.Context(), time.Minute)
	defer cancel()
	inst, err := Start(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("maillog of postfix instance %s:\n%s", inst.name, inst.Log())
		}
		if err := inst.Stop(); err != nil {
			tb.Errorf("stop postfix instance %s: %v", inst.name, err)
		}
	})
	return inst
}

// Start writes the configuration for cfg, runs "postfix check", starts the
// instance with "postfix start-fg" and waits, within ctx, until its smtpd
// greets. ctx bounds only the start; the instance runs until Stop.
//
// If the Go process dies without calling Stop, a watchdog process stops the
// instance.
func Start(ctx context.Context, cfg Config) (*Instance, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	if cfg.Dir == "" {
		return nil, errors.New("postfix: Config.Dir is required")
	}
	if cfg.Name == "" {
		cfg.Name = "postfix"
	}
	name := sanitizeName(cfg.Name)
	host, port, err := parseSMTPAddr(cfg.SMTPAddr)
	if err != nil {
		return nil, err
	}
	pickPort := port == 0

	inst, err := makeDirs(cfg.Dir, name)
	if err != nil {
		return nil, err
	}

	const attempts = 3
	for attempt := 1; ; attempt++ {
		if pickPort {
			if port, err = pickPortFunc(ctx, host); err != nil {
				inst.cleanupFiles()
				return nil, err
			}
		}
		inst.smtpAddr = net.JoinHostPort(host, strconv.Itoa(port))
		err = inst.start(ctx, cfg)
		if err == nil {
			return inst, nil
		}
		stopErr := inst.halt(true)
		if pickPort && errors.Is(err, errPortInUse) && attempt < attempts && stopErr == nil && ctx.Err() == nil {
			// Someone took the port between freePort and master's bind.
			inst.reset()
			continue
		}
		inst.cleanupFiles()
		return nil, errors.Join(err, stopErr)
	}
}

var errPortInUse = errors.New("smtpd port already in use")

// makeDirs creates the instance directory tree below dir.
func makeDirs(dir, name string) (*Instance, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("postfix: %w", err)
	}
	link := filepath.Join(abs, "postfix-"+name)
	inst := &Instance{name: name, root: link}
	if err := os.Mkdir(link, 0o755); err != nil {
		return nil, fmt.Errorf("postfix: create instance directory: %w", err)
	}
	if err := os.Chmod(link, 0o755); err != nil { // whatever the umask
		return nil, fmt.Errorf("postfix: %w", err)
	}
	if !postfixCanReach(link) {
		// An ancestor of dir is closed to the postfix user. Use a directory
		// of our own below the (world-traversable) temporary directory.
		if err := os.Remove(link); err != nil {
			return nil, fmt.Errorf("postfix: %w", err)
		}
		root, err := os.MkdirTemp("", "lb-postfix-"+name+"-")
		if err != nil {
			return nil, fmt.Errorf("postfix: create instance directory: %w", err)
		}
		inst.root, inst.ownRoot = root, true
		if err := os.Chmod(root, 0o755); err != nil {
			inst.cleanupFiles()
			return nil, fmt.Errorf("postfix: %w", err)
		}
		if !postfixCanReach(root) {
			inst.cleanupFiles()
			return nil, fmt.Errorf("postfix: the postfix user cannot reach %s nor %s; use a Config.Dir whose parents are world-searchable", link, root)
		}
		if err := os.Symlink(root, link); err != nil {
			inst.cleanupFiles()
			return nil, fmt.Errorf("postfix: %w", err)
		}
	}
	inst.confDir = filepath.Join(inst.root, "conf")
	inst.queueDir = filepath.Join(inst.root, "queue")
	inst.dataDir = filepath.Join(inst.root, "data")
	inst.logFile = filepath.Join(inst.root, "maillog")
	inst.fgLog = filepath.Join(inst.root, "start-fg.out")
	if err := inst.mkdirs(); err != nil {
		inst.cleanupFiles()
		return nil, err
	}
	return inst, nil
}

func (i *Instance) mkdirs() error {
	// Postfix wants root-owned configuration and queue directories that
	// are not group or world writable, and a data directory owned by the
	// mail owner. "postfix check" creates the queue subdirectories.
	for _, d := range []string{i.confDir, i.queueDir, i.dataDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return fmt.Errorf("postfix: %w", err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			return fmt.Errorf("postfix: %w", err)
		}
	}
	u, err := user.Lookup("postfix")
	if err != nil {
		return fmt.Errorf("postfix: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(i.dataDir, uid, gid); err != nil {
		return fmt.Errorf("postfix: %w", err)
	}
	if err := os.Chmod(i.dataDir, 0o700); err != nil {
		return fmt.Errorf("postfix: %w", err)
	}
	return nil
}

// postfixCanReach reports whether the postfix user can search directory dir
// (and so traverse every directory on the way).
func postfixCanReach(dir string) bool {
	u, err := user.Lookup("postfix")
	if err != nil {
		return false
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	cmd := exec.Command("/bin/sh", "-c", `test -x "$1"`, "sh", dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}},
	}
	cmd.Dir = "/"
	return cmd.Run() == nil
}

// start configures, checks and starts the instance at i.smtpAddr.
func (i *Instance) start(ctx context.Context, cfg Config) error {
	if err := i.writeConfig(cfg); err != nil {
		return err
	}
	if stdout, stderr, err := runPostfix(ctx, PostfixCmd, "-c", i.confDir, "check"); err != nil {
		return fmt.Errorf("postfix %s: postfix check: %w\n%s%s%s", i.name, err, stdout, stderr, i.logTail("maillog", 30))
	}
	// "postfix start-fg" would run the same checks again unless this file
	// exists (it removes the file).
	if err := os.WriteFile(filepath.Join(i.queueDir, "quick-start"), nil, 0o644); err != nil {
		return fmt.Errorf("postfix %s: %w", i.name, err)
	}

	// The watchdog stops the instance should this process die before Stop:
	// its stdin reaches EOF when our end of the pipe is closed by the
	// kernel. In its own process group, a terminal's ^C does not reach it.
	wd := exec.Command("/bin/sh", "-c", `
read -r line
[ "$line" = done ] && exit 0
"$1" -c "$2" stop >/dev/null 2>&1
[ -n "$3" ] && rm -rf -- "$3"
exit 0`, "lb-postfix-watchdog", PostfixCmd, i.confDir, i.ownRootPath())
	wd.Dir = "/"
	wd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	wdIn, err := wd.StdinPipe()
	if err != nil {
		return fmt.Errorf("postfix %s: watchdog: %w", i.name, err)
	}
	if err := wd.Start(); err != nil {
		return fmt.Errorf("postfix %s: start watchdog: %w", i.name, err)
	}
	i.watchdog, i.wdIn = wd, wdIn

	// "postfix start-fg" runs postfix-script, which runs "master -s" in the
	// foreground (master becomes the leader of a new session) and exits
	// when master does. Its output goes to a file, not a pipe: daemons may
	// inherit the descriptors, and Wait would then wait for them too.
	out, err := os.OpenFile(i.fgLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("postfix %s: %w", i.name, err)
	}
	defer out.Close()
	logStart := i.logSize()
	fg := exec.Command(PostfixCmd, "-c", i.confDir, "start-fg")
	fg.Dir = "/"
	fg.Stdout, fg.Stderr = out, out
	fg.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := fg.Start(); err != nil {
		return fmt.Errorf("postfix %s: postfix start-fg: %w", i.name, err)
	}
	i.fg = fg
	i.fgDone = make(chan struct{})
	go func() {
		i.fgErr = fg.Wait()
		close(i.fgDone)
	}()

	if err := i.waitReady(ctx, logStart); err != nil {
		return err
	}
	return nil
}

// waitReady waits until smtpd greets at i.smtpAddr. It gives up early when
// master exits or the maillog reports a fatal error after logStart: Postfix
// programs pause for a while before they exit on a fatal error.
func (i *Instance) waitReady(ctx context.Context, logStart int64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Probe in the background: a probe may hang until its timeout if
	// something else listens on the port.
	ready := make(chan error, 1)
	go func() {
		_, err := testproc.WaitForBanner(ctx, i.smtpAddr)
		ready <- err
	}()

	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		var problem string
		select {
		case err := <-ready:
			if err == nil {
				return nil
			}
			return fmt.Errorf("postfix %s: smtpd at %s not ready: %w\n%s", i.name, i.smtpAddr, err, i.logTail("maillog", 30))
		case <-i.fgDone:
			problem = fmt.Sprintf("master exited during start-up (%v)", i.fgErr)
		case <-tick.C:
		}
		newLog := i.logSince(logStart)
		if problem == "" {
			for _, l := range strings.Split(newLog, "\n") {
				if strings.Contains(l, ": fatal: ") || strings.Contains(l, ": panic: ") {
					problem = "start-up failed: " + l
					break
				}
			}
		}
		if problem != "" {
			err := fmt.Errorf("postfix %s: %s\n%s%s", i.name, problem, i.logTail("start-fg output", 20), i.logTail("maillog", 30))
			if strings.Contains(newLog, "Address already in use") {
				err = fmt.Errorf("%w: %w", errPortInUse, err)
			}
			return err
		}
	}
}

// logSize returns the current size of the maillog file.
func (i *Instance) logSize() int64 {
	fi, err := os.Stat(i.logFile)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logSince returns what was appended to the maillog after offset.
func (i *Instance) logSince(offset int64) string {
	log := i.Log()
	if int64(len(log)) < offset {
		return log
	}
	return log[offset:]
}

// writeConfig writes main.cf, master.cf and the transport table.
func (i *Instance) writeConfig(cfg Config) error {
	domain, hostname := cfg.MyDomain, cfg.MyHostname
	if domain == "" {
		if _, rest, ok := strings.Cut(hostname, "."); ok && rest != "" {
			domain = rest
		} else {
			domain = "example.test"
		}
	}
	if hostname == "" {
		hostname = i.name + "." + domain
	}

	type kv struct{ k, v string }
	params := []kv{
		{"compatibility_level", "3.6"},
		{"queue_directory", i.queueDir},
		{"data_directory", i.dataDir},
		{"mail_owner", "postfix"},
		{"setgid_group", "postdrop"},
		{"syslog_name", "postfix-" + i.name},
		{"maillog_file", i.logFile},
		{"maillog_file_prefixes", i.root},
		{"import_environment", "MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C POSTLOG_SERVICE POSTLOG_HOSTNAME"},
		{"myhostname", hostname},
		{"mydomain", domain},
		{"myorigin", "$myhostname"},
		{"mydestination", ""},
		{"local_recipient_maps", ""},
		{"local_transport", "error:5.1.1 local delivery is disabled"},
		{"alias_maps", ""},
		{"alias_database", ""},
		{"biff", "no"},
		{"inet_interfaces", "127.0.0.1"},
		{"inet_protocols", "ipv4"},
		{"mynetworks", "127.0.0.0/8"},
		{"relayhost", cfg.RelayHost},
		{"transport_maps", ""},
		{"smtp_dns_support_level", "disabled"},
		{"lmtp_dns_support_level", "disabled"},
		{"smtp_host_lookup", "native"},
		{"lmtp_host_lookup", "native"},
		{"smtpd_peername_lookup", "no"},
		{"smtp_tls_security_level", "none"},
		{"smtpd_tls_security_level", "none"},
		{"smtputf8_enable", "no"},
		{"smtpd_milters", cfg.Milters},
		{"non_smtpd_milters", cfg.NonSMTPDMilters},
		{"milter_protocol", "6"},
		{"milter_default_action", "accept"},
		{"queue_run_delay", "1s"},
		{"minimal_backoff_time", "1s"},
		{"maximal_backoff_time", "2s"},
		{"transport_retry_time", "1s"},
		{"delay_warning_time", "0h"},
		{"in_flow_delay", "0"},
	}
	if cfg.RelayHost == "" {
		params = append(params, kv{"default_transport", "retry:no RelayHost in this test instance"})
	}
	if len(cfg.Transports) > 0 {
		var b strings.Builder
		for _, k := range slices.Sorted(maps.Keys(cfg.Transports)) {
			v := cfg.Transports[k]
			if k == "" || strings.ContainsAny(k, " \t\r\n#") || v == "" || strings.ContainsAny(v, "\r\n") {
				return fmt.Errorf("postfix %s: bad Transports entry %q = %q", i.name, k, v)
			}
			fmt.Fprintf(&b, "%s %s\n", k, v)
		}
		file := filepath.Join(i.confDir, "transport")
		if err := writeSettled(file, b.String()); err != nil {
			return fmt.Errorf("postfix %s: %w", i.name, err)
		}
		// texthash: needs no postmap; daemons read it when they start.
		params[slices.IndexFunc(params, func(p kv) bool { return p.k == "transport_maps" })].v = "texthash:" + file
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.MainCF)) {
		v := cfg.MainCF[k]
		if k == "" || strings.ContainsAny(k, " \t\r\n=#") || strings.ContainsAny(v, "\r\n") {
			return fmt.Errorf("postfix %s: bad MainCF entry %q = %q", i.name, k, v)
		}
		if j := slices.IndexFunc(params, func(p kv) bool { return p.k == k }); j >= 0 {
			params[j].v = v
		} else {
			params = append(params, kv{k, v})
		}
	}
	var main strings.Builder
	main.WriteString("# Written by loopbreaker testenv/postfix.\n")
	for _, p := range params {
		fmt.Fprintf(&main, "%s = %s\n", p.k, p.v)
	}
	if err := writeSettled(filepath.Join(i.confDir, "main.cf"), main.String()); err != nil {
		return fmt.Errorf("postfix %s: %w", i.name, err)
	}

	var master strings.Builder
	master.WriteString("# Written by loopbreaker testenv/postfix. No chroot anywhere.\n")
	master.WriteString("# service type  private unpriv  chroot  wakeup  maxproc command + args\n")
	fmt.Fprintf(&master, "%s inet n - n - - smtpd\n", i.smtpAddr)
	master.WriteString(masterServices)
	for _, l := range cfg.MasterCF {
		master.WriteString(l)
		master.WriteString("\n")
	}
	if err := writeSettled(filepath.Join(i.confDir, "master.cf"), master.String()); err != nil {
		return fmt.Errorf("postfix %s: %w", i.name, err)
	}
	return nil
}

// writeSettled writes a configuration file and backdates it. Postfix
// distrusts a table modified within the last second (it may still be being
// written): every program reading it would pause in 300ms steps until the
// file "settles", which made each start about two seconds slower.
func writeSettled(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		return err
	}
	past := time.Now().Add(-time.Minute)
	return os.Chtimes(path, past, past)
}

// masterServices are the internal services of Debian's master.cf, without
// chroot and without local delivery and pipe transports.
const masterServices = `pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`

// SMTPAddr returns "127.0.0.1:PORT", where the instance's smtpd listens.
func (i *Instance) SMTPAddr() string { return i.smtpAddr }

// Name returns the instance name (Config.Name, sanitized).
func (i *Instance) Name() string { return i.name }

// Dir returns the instance directory, which holds conf/, queue/, data/ and
// maillog.
func (i *Instance) Dir() string { return i.root }

// ConfigDir returns the configuration directory (main.cf, master.cf).
func (i *Instance) ConfigDir() string { return i.confDir }

// QueueDir returns the queue directory.
func (i *Instance) QueueDir() string { return i.queueDir }

// LogFile returns the path of the instance's maillog file.
func (i *Instance) LogFile() string { return i.logFile }

// Postconf runs "postconf -c CONFIGDIR args..." and returns its standard
// output. For example Postconf("-h", "myhostname") reads a setting and
// Postconf("-e", "smtpd_milters=inet:127.0.0.1:7357") changes main.cf (then
// call Reload; Postfix programs pause a second or two for a main.cf changed
// within the last second).
func (i *Instance) Postconf(args ...string) (string, error) {
	return i.command(PostconfCmd, args...)
}

// Postqueue runs "postqueue -c CONFIGDIR args..." and returns its standard
// output, e.g. Postqueue("-j") lists the queue as JSON lines.
func (i *Instance) Postqueue(args ...string) (string, error) {
	return i.command(PostqueueCmd, args...)
}

// Postsuper runs "postsuper -c CONFIGDIR args..." and returns its standard
// output, e.g. Postsuper("-H", "ALL") releases all held messages.
func (i *Instance) Postsuper(args ...string) (string, error) {
	return i.command(PostsuperCmd, args...)
}

// Reload runs "postfix reload": daemons pick up main.cf and master.cf
// changes.
func (i *Instance) Reload() error {
	_, err := i.command(PostfixCmd, "reload")
	return err
}

// Flush runs "postqueue -f": deliver deferred mail now.
func (i *Instance) Flush() error {
	_, err := i.Postqueue("-f")
	return err
}

// command runs a Postfix command with "-c CONFIGDIR" and a one-minute limit.
func (i *Instance) command(path string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stdout, stderr, err := runPostfix(ctx, path, append([]string{"-c", i.confDir}, args...)...)
	if err != nil {
		return stdout, fmt.Errorf("postfix %s: %s %s: %w: %s", i.name, filepath.Base(path),
			strings.Join(args, " "), err, strings.TrimSpace(stderr))
	}
	return stdout, nil
}

// runPostfix runs a Postfix command and returns its standard output and
// standard error. Postfix commands write diagnostics to standard error only
// when it is a terminal (and otherwise to syslog, or to the maillog once
// they have read main.cf: a fatal error in main.cf would vanish), so
// standard error is a pseudo-terminal when one can be had.
func runPostfix(ctx context.Context, path string, args ...string) (stdout, stderr string, err error) {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = "/"
	cmd.WaitDelay = 5 * time.Second
	var outBuf bytes.Buffer
	cmd.Stdout = &outBuf
	ctl, tty, ptyErr := openPTY()
	if ptyErr != nil {
		var errBuf bytes.Buffer
		cmd.Stderr = &errBuf
		err = cmd.Run()
		return outBuf.String(), errBuf.String(), err
	}
	defer ctl.Close()
	cmd.Stderr = tty
	err = cmd.Start()
	tty.Close()
	if err != nil {
		return "", "", err
	}
	copied := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(ctl) // ends with EIO once no process has the terminal open
		copied <- b
	}()
	err = cmd.Wait()
	var errBytes []byte
	select {
	case errBytes = <-copied:
	case <-time.After(5 * time.Second):
		// A background process (e.g. "postsuper &" of postfix reload)
		// still holds the terminal. ctl.Close ends the read.
	}
	return outBuf.String(), strings.ReplaceAll(string(errBytes), "\r\n", "\n"), err
}

// HeldCount returns the number of messages in the hold queue.
func (i *Instance) HeldCount() (int, error) {
	return i.countQueues("hold")
}

// QueueCount returns the number of messages in the incoming, active and
// deferred queues: mail Postfix has yet to deliver (held mail excluded).
func (i *Instance) QueueCount() (int, error) {
	return i.countQueues("incoming", "active", "deferred")
}

// QueueCounts returns the number of messages in each of the maildrop,
// incoming, active, deferred and hold queues, keyed by queue name.
func (i *Instance) QueueCounts() (map[string]int, error) {
	out := map[string]int{}
	for _, q := range []string{"maildrop", "incoming", "active", "deferred", "hold"} {
		n, err := i.countQueues(q)
		if err != nil {
			return nil, err
		}
		out[q] = n
	}
	return out, nil
}

// WaitQueueEmpty waits until the maildrop, incoming, active and deferred
// queues are all empty, or ctx is done. Mail whose destination keeps failing
// stays deferred (and is retried every second or two), so a test expecting
// a deferral should check QueueCount instead.
func (i *Instance) WaitQueueEmpty(ctx context.Context) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		n, err := i.countQueues("maildrop", "incoming", "active", "deferred")
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("postfix %s: %d messages still queued: %w\n%s", i.name, n, ctx.Err(), i.queueListing())
		case <-i.fgDone:
			return fmt.Errorf("postfix %s: master has exited with %d messages queued", i.name, n)
		case <-tick.C:
		}
	}
}

func (i *Instance) queueListing() string {
	out, err := i.Postqueue("-p")
	if err != nil {
		return err.Error()
	}
	return out
}

// countQueues counts the queue files below the named queue directories.
func (i *Instance) countQueues(queues ...string) (int, error) {
	n := 0
	for _, q := range queues {
		err := filepath.WalkDir(filepath.Join(i.queueDir, q), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil // moved or deleted while we looked
				}
				return err
			}
			if d.Type().IsRegular() {
				n++
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("postfix %s: count %s queue: %w", i.name, q, err)
		}
	}
	return n, nil
}

// Log returns the contents of the instance's maillog file.
func (i *Instance) Log() string {
	b, err := os.ReadFile(i.logFile)
	if err != nil {
		return ""
	}
	return string(b)
}

// WaitLog waits until the maillog contains substr, or ctx is done.
func (i *Instance) WaitLog(ctx context.Context, substr string) error {
	if err := testproc.WaitForLine(ctx, i.Log, substr, 1); err != nil {
		return fmt.Errorf("postfix %s: %w\n%s", i.name, err, i.logTail("maillog", 30))
	}
	return nil
}

// logTail formats the last n lines of the maillog (what = "maillog") or of
// the start-fg output for an error message.
func (i *Instance) logTail(what string, n int) string {
	var text string
	if what == "maillog" {
		text = i.Log()
	} else {
		b, _ := os.ReadFile(i.fgLog)
		text = string(b)
	}
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 0 || (len(lines) == 1 && lines[0] == "") {
		return fmt.Sprintf("--- %s: empty ---\n", what)
	}
	return fmt.Sprintf("--- last lines of %s ---\n%s\n", what, strings.Join(lines, "\n"))
}

// Stop stops the instance ("postfix stop"), waits until every process of
// the instance has exited, and removes the instance files if they live
// outside Config.Dir. It is idempotent. It reports an error if master had
// died before Stop.
func (i *Instance) Stop() error {
	i.stopOnce.Do(func() {
		var crashed error
		if i.fgDone != nil && isClosed(i.fgDone) {
			crashed = fmt.Errorf("postfix %s: master exited before Stop (%v)\n%s", i.name, i.fgErr, i.logTail("maillog", 30))
		}
		i.stopErr = errors.Join(crashed, i.halt(false))
		i.cleanupFiles()
	})
	return i.stopErr
}

// halt stops master and its daemons, waits until no process of the
// instance is left, and dismisses the watchdog. It leaves the files in
// place. With force (a failed start) it kills the processes right away
// rather than asking master to stop: a master with a fatal error pauses
// before it exits, ignoring "postfix stop" for five seconds.
func (i *Instance) halt(force bool) error {
	var errs []error
	if i.fg != nil && !isClosed(i.fgDone) && !force {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		stdout, stderr, err := runPostfix(ctx, PostfixCmd, "-c", i.confDir, "stop")
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("postfix %s: postfix stop: %w\n%s%s", i.name, err, stdout, stderr))
		}
		select {
		case <-i.fgDone:
		case <-time.After(15 * time.Second):
			errs = append(errs, fmt.Errorf("postfix %s: master still running 15s after postfix stop; killing it", i.name))
			force = true
		}
	}
	if force {
		for _, pid := range instanceProcs(i.confDir) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	// master's daemons get SIGTERM from master as it exits; wait for them.
	if err := waitGone(i.confDir, 15*time.Second); err != nil {
		errs = append(errs, fmt.Errorf("postfix %s: %w", i.name, err))
	}
	if i.fg != nil && !isClosed(i.fgDone) {
		select {
		case <-i.fgDone:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-i.fg.Process.Pid, syscall.SIGKILL) // its own process group
			<-i.fgDone
		}
	}
	if i.watchdog != nil {
		_, _ = io.WriteString(i.wdIn, "done\n")
		_ = i.wdIn.Close()
		if err := i.watchdog.Wait(); err != nil {
			errs = append(errs, fmt.Errorf("postfix %s: watchdog: %w", i.name, err))
		}
		i.watchdog, i.wdIn = nil, nil
	}
	return errors.Join(errs...)
}

// isClosed reports whether ch is closed.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// reset forgets the processes of a failed start so that start can run again.
func (i *Instance) reset() {
	i.fg, i.fgDone, i.fgErr = nil, nil, nil
	_ = os.Remove(filepath.Join(i.queueDir, "pid", "master.pid"))
}

// ownRootPath returns the instance directory if Stop is to remove it.
func (i *Instance) ownRootPath() string {
	if i.ownRoot && os.Getenv(KeepEnv) != "1" {
		return i.root
	}
	return ""
}

// cleanupFiles removes the instance directory if the harness created it
// outside Config.Dir (Config.Dir itself belongs to the caller).
func (i *Instance) cleanupFiles() {
	if p := i.ownRootPath(); p != "" {
		_ = os.RemoveAll(p)
	}
}

// waitGone waits until no process of the instance with configuration
// directory confDir is left, killing the stragglers after timeout.
func waitGone(confDir string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	killed := false
	for {
		pids := instanceProcs(confDir)
		if len(pids) == 0 {
			if killed {
				return errors.New("had to SIGKILL processes left after stop")
			}
			return nil
		}
		if time.Now().After(deadline) {
			if killed {
				return fmt.Errorf("processes %v survive SIGKILL", pids)
			}
			for _, p := range pids {
				_ = syscall.Kill(p, syscall.SIGKILL)
			}
			killed = true
			deadline = time.Now().Add(5 * time.Second)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// instanceProcs lists the live processes of the instance whose
// configuration directory is confDir: the postfix command sets MAIL_CONFIG
// and master passes it on to every daemon (import_environment).
func instanceProcs(confDir string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	want := []byte("MAIL_CONFIG=" + confDir)
	self := os.Getpid()
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || len(env) == 0 { // gone, or a zombie
			continue
		}
		if slices.ContainsFunc(bytes.Split(env, []byte{0}), func(v []byte) bool { return bytes.Equal(v, want) }) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// parseSMTPAddr splits Config.SMTPAddr, insisting on IPv4 loopback.
func parseSMTPAddr(addr string) (string, int, error) {
	if addr == "" {
		return "127.0.0.1", 0, nil
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("postfix: SMTPAddr %q: %w", addr, err)
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.To4() == nil || !ip.IsLoopback() {
		return "", 0, fmt.Errorf("postfix: SMTPAddr %q: must be an IPv4 loopback address", addr)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("postfix: SMTPAddr %q: bad port", addr)
	}
	return ip.String(), port, nil
}

// pickPortFunc picks the port when Config.SMTPAddr leaves it open; tests
// replace it.
var pickPortFunc = testproc.FreePort

// sanitizeName keeps letters, digits, '.', '_' and '-'.
func sanitizeName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			return r
		}
		return '-'
	}, s)
}

package postfix

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/loopbreaker/loopbreaker/testenv/testproc"
)

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

	fg       *testproc.Proc // "postfix start-fg"
	watchdog *testproc.Proc // stops the instance when this process dies
	wdIn     io.WriteCloser

	stopOnce sync.Once
	stopErr  error
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

// pickPortFunc picks the port when Config.SMTPAddr leaves it open; tests
// replace it.
var pickPortFunc = testproc.FreePort
